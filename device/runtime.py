"""Putting the device together from its config, and running it as a service.

* structured logs: one JSON object per line on stderr (journald keeps them as is),
* the decoder comes from a factory (``make_decoder``): the development linear decoder,
  or the model bundle through conversion.runtime (ai_edge_litert, falling back to
  tflite_runtime, is that module's business),
* the decoder passes a self-test before READY=1 is sent to systemd,
* a watcher swaps in a new decoder when a new bundle is installed (atomically,
  between two loop ticks); a bundle that fails to load or self-test is refused and
  the running one stays.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


from device.control.budget import ByteBudget
from device.control.config import Config
from device.control.controls import VoiceBank
from device.control.display import OledDisplay, PngDisplay
from device.control.loop import ControlLoop, LoopSettings
from device.control.knobs import AdcKnobs, AdcLayout, emulated_board
from device.control.mapping import KnobMapping
from device.control.midi_knobs import CCBinding, CombinedKnobs, MidiKnobs
from device.control.thru import Thru
from device.flashing.self_test import self_test
from device.flashing.bank_follow import BankFollower, keep_received
from device.flashing.model_follow import Loader, ModelFollower, ModelState, load_active
from device.control.notify import Notifier
from device.control.ports import Decoder
from device.control.profiles import EchoCC, make_profile
from device.flashing.status import StatusPublisher
from device.flashing.status_file import write_status
from dxmacro.errors import DxmacroError

log = logging.getLogger("dxmacro.device")
_STD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``extra={...}`` fields become keys."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": round(record.created, 6), "level": record.levelname.lower(), "logger": record.name,
               "msg": record.getMessage()}
        doc.update({k: v for k, v in record.__dict__.items() if k not in _STD})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging(level: str = "info", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("dxmacro")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


# -- decoder ------------------------------------------------------------------------------
def make_decoder(cfg: Config) -> Decoder:
    if cfg.decoder == "linear":
        from device.twins.linear_decoder import LinearDecoder

        return LinearDecoder(seed=cfg.decoder_seed)
    assert cfg.bundle is not None
    return load_bundle_decoder(cfg.bundle, cfg.public_key)


def load_bundle_decoder(bundle: Path, public_key: Path | None = None) -> Decoder:
    """The trained int8 decoder from a model bundle (conversion.runtime, LiteRT). With
    ``public_key`` the signature is verified on load; bundles taken from the model store were
    verified when the flash service installed them, and the store never modifies them."""
    from conversion import keys, runtime

    key = keys.load_public_key(public_key) if public_key is not None else None
    return runtime.load_decoder(bundle, key)


# -- assembly -----------------------------------------------------------------------------
def mapping_factory(cfg: Config):
    """Knob -> latent mappings for a decoder: the bundle's knobs, overridden by [[knob]]."""

    def build(decoder: Decoder) -> list[KnobMapping]:
        infos = decoder.knobs
        if not cfg.knobs:
            n = min(cfg.adc_channels, len(infos))
            return [KnobMapping(i, infos[i].dim, infos[i].name, infos[i].low, infos[i].high) for i in range(n)]
        out = []
        midi = 0
        for i, k in enumerate(cfg.knobs):
            idx = k.knob if k.knob is not None else (None if k.dim is not None else i)
            if idx is not None and idx >= len(infos):
                raise DxmacroError(f"[knob {i + 1}] refers to knob {idx}, but the model has {len(infos)} knobs")
            info = infos[idx] if idx is not None else None
            dim = k.dim if k.dim is not None else info.dim  # type: ignore[union-attr]
            name = k.name or (info.name if info else f"dim{dim}")
            if k.range is not None:
                low, high = k.range
            elif info is not None:
                low, high = info.low, info.high
            else:
                low, high = -2.5, 2.5  # +-2.5 sigma of the standard-normal prior
            # a controller's knobs follow the ADC board's channels in the reader (device.control.midi_knobs)
            channel = k.channel if not k.midi else adc_width(cfg) + midi
            midi += k.midi
            out.append(KnobMapping(channel, dim, name, low, high, k.curve, k.invert))
        return out

    return build


def adc_width(cfg: Config) -> int:
    """How many channels the ADC board gives the knob reader (0 without a board)."""
    return cfg.adc_channels if cfg.uses_adc else 0


def cc_bindings(cfg: Config) -> list[CCBinding]:
    return [CCBinding(k.cc, k.cc_channel - 1 if k.cc_channel else None, k.cc_mode, k.cc_step)  # type: ignore[arg-type]
            for k in cfg.knobs if k.midi]


def with_controller(cfg: Config, adc) -> tuple[object, MidiKnobs | None]:
    """The loop's knob reader: the ADC board's (``adc``, None without one) followed by the
    controller's knobs ([[knob]] tables with cc), and the controller's part."""
    bindings = cc_bindings(cfg)
    if not bindings:
        return adc, None
    midi = MidiKnobs(bindings)
    return (CombinedKnobs([adc, midi]) if adc is not None else CombinedKnobs([midi])), midi


def build_loop(cfg: Config, *, decoder: Decoder, knobs, port, clock, buttons=None, display=None,
               notifier: Notifier | None = None, echo_port=None, midi_in=None) -> ControlLoop:
    """``knobs``: the ADC board's reader (None when every knob is a controller's); the controller's
    knobs and the thru listen on ``midi_in``, the one input port."""
    channel = cfg.channel - 1
    knobs, midi_knobs = with_controller(cfg, knobs)
    thru = Thru(channel) if cfg.thru and midi_in is not None else None
    profile = make_profile(cfg.profile, channel, cfg.cc_map)
    budget = ByteBudget(cfg.byte_rate) if cfg.byte_rate else None
    echo = EchoCC(cfg.echo_channel - 1, cfg.echo_ccs) if cfg.echo_ccs else None
    settings = LoopSettings(rate_hz=cfg.rate_hz, smoothing=cfg.smoothing, takeover=cfg.takeover, knob_mode=cfg.knob_mode,
                            reopen_interval_s=cfg.reopen_interval_s, random_seed=cfg.random_seed)
    loop = ControlLoop(knobs=knobs, port=port, decoder=decoder, mappings=mapping_factory(cfg), profile=profile,
                       clock=clock, budget=budget, echo=echo, echo_port=echo_port, buttons=buttons,
                       display=display, notifier=notifier,
                       bank=VoiceBank(cfg.bank_file) if cfg.bank_file else None, settings=settings,
                       midi_in=midi_in, program_channel=cfg.midi_input_channel - 1 if cfg.midi_input_channel else None,
                       midi_knobs=midi_knobs, thru=thru)
    if midi_in is not None:  # learn from the status page (through the store) or with [buttons] panic held
        from device.control.learn_service import LearnDesk

        loop.learn_desk = LearnDesk(cfg.path, cfg.store, has_input=True,
                                    controller_tables=tuple(i for i, k in enumerate(cfg.knobs) if k.midi))
    return loop


def open_midi_input(cfg: Config):
    """The performer's MIDI input ([midi] input), listened to in its own thread; None without one.
    An absent port is retried, never an error (device.control.midi_in)."""
    if not cfg.midi_input:
        return None
    from device.control.midi_in import ListeningPort
    from hardware.midi import RtMidiInput

    return ListeningPort(lambda: RtMidiInput(cfg.midi_input, cfg.midi_input_api, client_name="dxmacro-in",
                                             threaded=False), cfg.midi_input).start()


def make_display(cfg: Config):
    if cfg.display == "ssd1306":
        try:
            return OledDisplay(cfg.display_bus, cfg.display_address)
        except (ImportError, OSError) as exc:
            raise DxmacroError(f"[display] cannot open the SSD1306 on I2C bus {cfg.display_bus} address "
                               f"0x{cfg.display_address:02X}: {exc}") from None
    if cfg.display == "png":
        return PngDisplay(cfg.display_png)
    return None


class BundleWatcher(threading.Thread):
    """Polls the bundle file; a changed file is loaded, self-tested and swapped in."""

    def __init__(self, cfg: Config, loop: ControlLoop, stop: threading.Event) -> None:
        super().__init__(name="bundle-watcher", daemon=True)
        self.cfg, self.loop, self.stop = cfg, loop, stop
        self.seen = self._stamp()

    def _stamp(self):
        try:
            st = os.stat(self.cfg.bundle)  # type: ignore[arg-type]
            return (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            return None

    def run(self) -> None:
        while not self.stop.wait(self.cfg.watch_interval_s):
            stamp = self._stamp()
            if stamp is None or stamp == self.seen:
                continue
            self.seen = stamp
            try:
                new = make_decoder(self.cfg)
                result = self_test(new)
            except DxmacroError as exc:
                log.error("new bundle refused", extra={"event": "bundle_refused", "reason": str(exc)})
                continue
            self.loop.swap_decoder(new)
            log.info("new bundle loaded", extra={"event": "bundle_loaded", "anchors": result.anchors})


def adc_layout(cfg: Config) -> AdcLayout:
    return AdcLayout(cfg.adc_chip, cfg.adc_addresses, cfg.adc_channels, cfg.data_rate, cfg.adc_fsr, cfg.adc_vref)


def simulated_knobs(cfg: Config, clock, positions, *, seed: int = 0, record: bool = False) -> AdcKnobs:
    """The knobs of --simulate, the demo and the bench: hardware's register-level ADS1x15
    emulation (datasheet noise, conversion time, ``[simulate] noise_lsb`` of board noise on top,
    ``fail_rate`` of failed I2C transfers) on a FakeI2CBus, read by the same driver as on the Pi.
    ``positions(channel, t)`` is each pot's travel 0..1 at clock time t. The board is ``.board``."""
    layout = adc_layout(cfg)
    board = emulated_board(layout, clock, positions, fault_rate=cfg.sim_fail_rate,
                           extra_noise_lsb=cfg.sim_noise_lsb, seed=seed, record=record)
    knobs = AdcKnobs(board.bus, layout, clock)
    knobs.board = board  # type: ignore[attr-defined]
    return knobs


def simulated_parts(cfg: Config, clock, duration_s: float):
    """Knobs (emulated ADC board, scripted pots), scripted buttons and an emulated DX7 for --simulate."""
    from device.twins.performance import load_performance, wander
    from device.twins.sim import EmulatedDX7, ScriptedButtons

    perf = load_performance(cfg.sim_script, cfg.adc_channels) if cfg.sim_script else wander(cfg.adc_channels,
                                                                                              duration_s)
    t0 = clock.now()
    script = perf.knob_script()
    knobs = simulated_knobs(cfg, clock, lambda ch, t: script.position(ch, t - t0))
    buttons = ScriptedButtons(clock, [(t0 + t, b) for t, b in perf.presses])
    synth = EmulatedDX7(clock, cfg.channel - 1)
    return knobs, buttons, synth, perf


@dataclass
class Parts:
    """What the loop runs on, and what must be closed when it stops."""

    knobs: object
    buttons: object | None
    port: object
    echo_port: object | None = None
    leds: object | None = None
    closers: list = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - shutting down: report, go on closing the rest
                log.warning("close failed", extra={"event": "close_error", "reason": repr(exc)})


def hardware_parts(cfg: Config, clock, *, bus=None, gpio=None) -> Parts:
    """The real parts from the config: the ADS1x15 chips on ``/dev/i2c-<[adc] i2c_bus>`` (smbus2),
    buttons and LEDs through RPi.GPIO (rpi-lgpio), the synth's MIDI port (rtmidi over ALSA or
    JACK, or the UART's DIN out). ``bus``/``gpio`` replace the real ones (tests: a FakeI2CBus with
    emulated chips, FakeGPIO); the MIDI port is always real."""
    from device.control.gpio_controls import GpioButtons, LedIndicators
    from device.control.midi_port import MidiPort, PortSpec
    from hardware.errors import HardwareError
    from hardware.gpio import BCM, real_gpio
    from hardware.i2c import open_smbus

    parts = Parts(None, None, None)
    try:
        if bus is None and cfg.uses_adc:
            bus = open_smbus(cfg.adc_bus)
            parts.closers.append(bus.close)
        parts.knobs = AdcKnobs(bus, adc_layout(cfg), clock) if cfg.uses_adc else None
        if cfg.buttons or cfg.leds:
            gpio = gpio if gpio is not None else real_gpio()
            gpio.setmode(BCM)  # the config names BCM pins (real_gpio sets it too; an injected one may not)
            parts.closers.append(gpio.cleanup)
            if cfg.buttons:
                parts.buttons = GpioButtons(gpio, cfg.buttons)
            if cfg.leds:
                parts.leds = LedIndicators(gpio, cfg.leds)
        spec = PortSpec(cfg.midi_api, cfg.port, baudrate=cfg.din_baudrate)
        parts.port = MidiPort(spec)
        parts.closers.append(parts.port.close)
        if not parts.port.out.connected:
            log.warning("MIDI port absent at start; retrying", extra={"event": "port_gone",
                                                                        "reason": parts.port.last_error})
        if cfg.echo_port:
            parts.echo_port = MidiPort(PortSpec(cfg.midi_api, cfg.echo_port, client_name="dxmacro-echo",
                                                baudrate=cfg.din_baudrate))
            parts.closers.append(parts.echo_port.close)
    except HardwareError as exc:
        parts.close()
        raise DxmacroError(f"{exc} (or run with --simulate for the simulated twins)") from None
    return parts


def mapping_fits(cfg: Config):
    """Raises DxmacroError when this controller's knobs cannot play ``decoder`` (the check
    ControlLoop makes before a swap, made before the swap is offered)."""
    build = mapping_factory(cfg)

    def fits(decoder: Decoder) -> None:
        for m in build(decoder):
            if not 0 <= m.dim < decoder.latent_size:
                raise DxmacroError(f"knob {m.name!r} moves latent dimension {m.dim}, but the model has "
                                   f"{decoder.latent_size} latent dimensions")

    return fits


def _publish_failure(cfg: Config, state: ModelState) -> None:
    """The loop cannot start on the active model: say so at once, so the flash service rolls back."""
    if cfg.status_path is not None:
        try:
            write_status(cfg.status_path, {"last_tick": time.monotonic(), "healthy": False,
                                           "model": state.as_json(), "knobs": [], "anchor": None,
                                           "midi": {"port": cfg.port, "state": "disconnected"},
                                           "errors": [{"time": time.time(), "message": state.reason}]})
        except OSError:
            pass


def follow_bank(store: Path, loop: ControlLoop, state: ModelState, stop: threading.Event,
                interval_s: float) -> BankFollower:
    """Next / previous step through the store's active voice bank while it is made for the model
    playing (device/flashing/bank_follow.py); the first look happens now, before the first tick."""
    follower = BankFollower(store, lambda: (state.file, state.id, loop.decoder.latent_size), loop.set_voices, stop,
                            interval_s)
    loop.on_received = lambda voices: keep_received(store, state.id, voices)
    follower.poll()
    follower.start()
    return follower


def run_device(cfg: Config, *, simulate: bool, duration_s: float | None = None, out=sys.stdout,
               model_loader: Loader | None = None, stop: threading.Event | None = None) -> int:
    """Assemble and run until ``duration_s`` passes, SIGTERM/SIGINT (main thread) or ``stop``.
    ``model_loader`` turns a store's model file into a decoder (default: conversion's bundle
    loader, ``load_bundle_decoder``)."""
    from device.twins.sim import RealClock

    setup_logging(cfg.log_level)
    model_state: ModelState | None = None
    watcher = None
    loader = model_loader or load_bundle_decoder
    if cfg.store is not None:
        model_state = ModelState()
        try:
            watcher, decoder = load_active(cfg.store, loader, mapping_fits(cfg), model_state)
        except DxmacroError:
            _publish_failure(cfg, model_state)
            raise
    else:
        decoder = make_decoder(cfg)
    result = self_test(decoder)
    log.info("decoder self-test passed", extra={"event": "self_test", "anchors": result.anchors,
                                                "exact_anchors": result.exact_anchors,
                                                "decode_us": round(result.decode_us, 1),
                                                "model": model_state.file if model_state else cfg.decoder})
    clock = RealClock(spin_s=cfg.adc_spin_us * 1e-6)
    synth = None
    if simulate:
        knobs, buttons, synth, _ = simulated_parts(cfg, clock, duration_s or 60.0)
        parts = Parts(knobs if cfg.uses_adc else None, buttons, synth)
    else:
        parts = hardware_parts(cfg, clock)
    notifier = Notifier()
    display = make_display(cfg)
    if parts.leds is not None:
        from device.control.gpio_controls import Displays

        display = Displays([d for d in (display, parts.leds) if d is not None])
    stop = stop or threading.Event()
    midi_in = open_midi_input(cfg)
    if midi_in is not None:
        parts.closers.append(midi_in.close)
    try:
        loop = build_loop(cfg, decoder=decoder, knobs=parts.knobs, port=parts.port, clock=clock,
                          buttons=parts.buttons, display=display, notifier=notifier, echo_port=parts.echo_port,
                          midi_in=midi_in)
        loop.model_state = model_state
        if cfg.status_path is not None:
            port_name = (lambda: getattr(parts.port, "name", cfg.port)) if not simulate else \
                (lambda: "emulated DX7 (simulated)")
            loop.status = StatusPublisher(cfg.status_path, model_state or ModelState(file=cfg.decoder), port_name)
            parts.closers.append(loop.status.close)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        if watcher is not None and model_state is not None:
            ModelFollower(watcher, loader, mapping_fits(cfg), loop.swap_decoder, model_state, stop,
                          min(cfg.watch_interval_s, 0.2)).start()
            follow_bank(cfg.store, loop, model_state, stop, min(cfg.watch_interval_s, 0.2))
        elif cfg.decoder == "bundle" and cfg.watch_bundle:
            BundleWatcher(cfg, loop, stop).start()
        notifier.ready(f"{len(loop.mappings)} knobs, profile {cfg.profile}")
        log.info("running", extra={"event": "start", "simulate": simulate, "profile": cfg.profile,
                                   "scan_period_ms": round(loop.knobs.scan_period_s * 1e3, 3)})
        until = clock.now() + duration_s if duration_s else None
        loop.run(until=until, stop=stop)
        loop.release_notes()  # nothing the performer struck keeps sounding after we stop
        stop.set()
        notifier.stopping()
        if loop.status is not None:
            loop.status.publish(loop)
    finally:
        parts.close()
    if isinstance(loop.display, PngDisplay) and loop.display.path and loop.display.state:
        loop.display.save()
    s = loop.stats
    log.info("stopped", extra={"event": "stop", "ticks": s.ticks, "messages": s.messages, "bytes": s.bytes})
    print(f"{s.ticks} ticks, {s.messages} MIDI messages ({s.bytes} bytes), voice {loop.voice.name.strip()!r}"
          + (f", emulated DX7 holds {synth.voice.name.strip()!r}" if synth is not None else ""), file=out)
    return 0
