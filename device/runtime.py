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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dx7 import Voice
from dx7.params import LEARNABLE_COUNT
from device.budget import ByteBudget
from device.config import Config
from device.controls import VoiceBank
from device.display import OledDisplay, PngDisplay
from device.loop import ControlLoop, LoopSettings
from device.mapping import KnobMapping
from device.notify import Notifier
from device.ports import Decoder
from device.profiles import EchoCC, make_profile
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
        from device.linear_decoder import LinearDecoder

        return LinearDecoder(seed=cfg.decoder_seed)
    assert cfg.bundle is not None
    return load_bundle_decoder(cfg.bundle)


def load_bundle_decoder(bundle: Path) -> Decoder:
    """The trained int8 decoder from a signed bundle (conversion.runtime). MERGE: the
    lead binds conversion's loader here; until then this names what is missing."""
    try:
        from conversion import runtime as conv  # type: ignore[attr-defined]
    except ImportError:
        raise DxmacroError("this build has no model-bundle loader (conversion.runtime): use [model] "
                           "decoder = \"linear\" for development") from None
    loader = getattr(conv, "load_decoder", None)
    if loader is None:
        raise DxmacroError("conversion.runtime has no load_decoder(bundle) to load the model bundle")
    return loader(bundle)


@dataclass(frozen=True)
class SelfTest:
    anchors: int
    exact_anchors: int
    decode_us: float


def self_test(decoder: Decoder) -> SelfTest:
    """Decode every anchor and the prior's centre; every output must be a valid voice.
    Raises DxmacroError naming what is wrong (a tampered or truncated model shows here)."""
    if decoder.latent_size < 1:
        raise DxmacroError("decoder self-test: latent size must be positive")
    if not decoder.knobs:
        raise DxmacroError("decoder self-test: the bundle names no knobs")
    for k in decoder.knobs:
        if not 0 <= k.dim < decoder.latent_size or not k.low < k.high:
            raise DxmacroError(f"decoder self-test: knob {k.name!r} has dim {k.dim} / range {k.low}..{k.high}")
    probes = [np.zeros(decoder.latent_size, np.float32)] + [np.asarray(a.latent, np.float32) for a in decoder.anchors]
    exact = 0
    t0 = time.perf_counter()
    for i, z in enumerate(probes):
        try:
            out = np.asarray(decoder.decode(z))
            if out.shape != (LEARNABLE_COUNT,):
                raise ValueError(f"output shape {out.shape}, expected ({LEARNABLE_COUNT},)")
            voice = Voice.from_parameters(out, "SELFTEST")
        except Exception as exc:  # noqa: BLE001 - any failure of a model is reported as one line
            raise DxmacroError(f"decoder self-test failed on probe {i}: {exc}") from None
        if i and voice.content_key() == decoder.anchors[i - 1].voice.content_key():
            exact += 1
    us = (time.perf_counter() - t0) / len(probes) * 1e6
    return SelfTest(len(decoder.anchors), exact, us)


# -- assembly -----------------------------------------------------------------------------
def mapping_factory(cfg: Config):
    """Knob -> latent mappings for a decoder: the bundle's knobs, overridden by [[knob]]."""

    def build(decoder: Decoder) -> list[KnobMapping]:
        infos = decoder.knobs
        if not cfg.knobs:
            n = min(cfg.adc_channels, len(infos))
            return [KnobMapping(i, infos[i].dim, infos[i].name, infos[i].low, infos[i].high) for i in range(n)]
        out = []
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
            out.append(KnobMapping(k.channel, dim, name, low, high, k.curve, k.invert))
        return out

    return build


def build_loop(cfg: Config, *, decoder: Decoder, knobs, port, clock, buttons=None, display=None,
               notifier: Notifier | None = None, echo_port=None) -> ControlLoop:
    channel = cfg.channel - 1
    profile = make_profile(cfg.profile, channel, cfg.cc_map)
    budget = ByteBudget(cfg.byte_rate) if cfg.byte_rate else None
    echo = EchoCC(cfg.echo_channel - 1, cfg.echo_ccs) if cfg.echo_ccs else None
    settings = LoopSettings(rate_hz=cfg.rate_hz, smoothing=cfg.smoothing, takeover=cfg.takeover,
                            reopen_interval_s=cfg.reopen_interval_s, random_seed=cfg.random_seed)
    return ControlLoop(knobs=knobs, port=port, decoder=decoder, mappings=mapping_factory(cfg), profile=profile,
                       clock=clock, budget=budget, echo=echo, echo_port=echo_port, buttons=buttons,
                       display=display, notifier=notifier,
                       bank=VoiceBank(cfg.bank_file) if cfg.bank_file else None, settings=settings)


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


def simulated_parts(cfg: Config, clock, duration_s: float):
    """Knobs, buttons and a DX7 for --simulate (until the hardware branch's twins are bound)."""
    from device.performance import load_performance, wander
    from device.sim import EmulatedDX7, ScriptedButtons, SimulatedADC

    perf = load_performance(cfg.sim_script, cfg.adc_channels) if cfg.sim_script else wander(cfg.adc_channels,
                                                                                              duration_s)
    t0 = clock.now()
    script = perf.knob_script()
    adc = SimulatedADC(clock, lambda ch, t: script.position(ch, t - t0), cfg.adc_channels, cfg.data_rate,
                       cfg.sim_noise_lsb, cfg.sim_fail_rate, seed=0)
    buttons = ScriptedButtons(clock, [(t0 + t, b) for t, b in perf.presses])
    synth = EmulatedDX7(clock, cfg.channel - 1)
    return adc, buttons, synth, perf


def hardware_parts(cfg: Config):
    """MERGE: bind hardware/ here (ADS1115 on cfg.adc_bus/adc_address at cfg.data_rate, GPIO buttons on
    cfg.buttons, the MIDI port named cfg.port or the UART DIN out)."""
    raise DxmacroError("real knobs, buttons and MIDI ports come from the hardware package, which this build "
                       "does not bind yet: run with --simulate")


def run_device(cfg: Config, *, simulate: bool, duration_s: float | None = None, out=sys.stdout) -> int:
    from device.sim import RealClock

    setup_logging(cfg.log_level)
    decoder = make_decoder(cfg)
    result = self_test(decoder)
    log.info("decoder self-test passed", extra={"event": "self_test", "anchors": result.anchors,
                                                "exact_anchors": result.exact_anchors,
                                                "decode_us": round(result.decode_us, 1)})
    clock = RealClock()
    synth = None
    if simulate:
        knobs, buttons, synth, _ = simulated_parts(cfg, clock, duration_s or 60.0)
        port = synth
    else:
        knobs, buttons, port = hardware_parts(cfg)
    notifier = Notifier()
    loop = build_loop(cfg, decoder=decoder, knobs=knobs, port=port, clock=clock, buttons=buttons,
                      display=make_display(cfg), notifier=notifier)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if cfg.decoder == "bundle" and cfg.watch_bundle:
        BundleWatcher(cfg, loop, stop).start()
    notifier.ready(f"{len(loop.mappings)} knobs, profile {cfg.profile}")
    log.info("running", extra={"event": "start", "simulate": simulate, "profile": cfg.profile,
                               "scan_period_ms": round(knobs.scan_period_s * 1e3, 3)})
    until = clock.now() + duration_s if duration_s else None
    loop.run(until=until, stop=stop)
    notifier.stopping()
    if isinstance(loop.display, PngDisplay) and loop.display.path and loop.display.state:
        loop.display.save()
    s = loop.stats
    log.info("stopped", extra={"event": "stop", "ticks": s.ticks, "messages": s.messages, "bytes": s.bytes})
    print(f"{s.ticks} ticks, {s.messages} MIDI messages ({s.bytes} bytes), voice {loop.voice.name.strip()!r}"
          + (f", emulated DX7 holds {synth.voice.name.strip()!r}" if synth is not None else ""), file=out)
    return 0
