"""Voices to sound and sound to numbers: rendering with Dexed's engine (``render``), log-mel
features (``features``), rendering the data set's way and the audio measures (``sound``), the
note a recording plays (``pitch``), plausible synthetic DX7 voices (``synth_voices``) and sounds
no DX7 made (``foreign_sounds``).

May import ``dx7``; nothing else of the host.
"""
