"""From a trained decoder to a signed int8 bundle, and reading that bundle back.

Host side (torch, tensorflow): ``export``, ``equalize``, ``parity``, ``pipeline``,
``testing_models``, ``fixture_report``.
Device side, the only part the Pi imports: ``bundle`` (the signed file), ``keys`` (Ed25519),
``runtime`` (the int8 decoder through LiteRT), ``output_grid``. These import ``dx7`` only.
"""
