"""The control loop on the Pi: knobs in, a voice out over MIDI, at a fixed rate.

Owns the loop (``loop``), the knobs and how raw readings become latent values (``knobs``,
``smoothing``, ``mapping``), the interfaces the loop talks to (``ports``), what each synth is
sent (``profiles``), the MIDI byte budget (``budget``), buttons, screen, LEDs and the MIDI port
(``controls``, ``display``, ``gpio_controls``, ``midi_port``), systemd notification
(``notify``) and the device config (``config``).

May import ``dx7``, ``hardware`` and conversion's device-side reader; nothing else of the device.
"""
