"""Bench tools that drive the whole device: the control loop timed in real time
(``realtime``: ``dxmacro bench device``), the scripted demo (``demo``: ``dxmacro demo``) and
the hardware-in-the-loop checks against a synth on a real MIDI port (``hil``: ``dxmacro hil``).
Audio comes through a renderer passed in by the command layer (``audio``).

May import everything of ``device`` below it, ``hardware``, ``dx7`` and conversion's
device-side reader; never ``host_training``.
"""
