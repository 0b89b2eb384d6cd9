"""The Raspberry Pi side: knobs -> latent -> int8 decoder -> MIDI.

Sub-packages, one capability each (lower ones never import higher ones):

- ``device.control``: the control loop and its parts (knobs, smoothing, mapping, the
  decoder and MIDI interfaces, what to send to which synth, the byte budget, buttons,
  the screen, the device config).
- ``device.flashing``: models onto the Pi and back (the store, the flasher, the HTTP flash
  service and its status page, self-tests, following the active model, status.json).
- ``device.twins``: simulated twins of what a bench lacks (buttons, a DX7 on an in-memory
  link, scripted performances, the development linear decoder).
- ``device.bench``: tools that drive the whole device (the real-time benchmark, the demo,
  the hardware-in-the-loop checks).
- ``device.runtime``: the device put together from its config, run as a service.

The device never imports ``host_training``, torch, tensorflow or dexed, not even lazily:
audio for demos and HIL checks comes through a renderer the command layer passes in
(``device.bench.audio``). Enforced by tests/test_layers.py.
"""
