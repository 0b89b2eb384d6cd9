"""Simulated twins of what a bench or this machine cannot have: panel buttons and a
hardware DX7 on an in-memory link (``sim``), scripted performances (``performance``) and the
development linear decoder (``linear_decoder``). ``dxmacro device run --simulate``, the demo,
the benchmark and the tests run the real control loop against them.

May import ``dx7``, ``hardware`` and ``device.control``.
"""
