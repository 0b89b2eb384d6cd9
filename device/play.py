"""``dxmacro play``: the device's control loop on a laptop, a MIDI controller in and a synth out.

The same loop as on the Pi (device.runtime.build_loop): the controller's knobs are [[knob]] tables
with cc (default: CC 20.. on any channel, absolute, one per model knob), its notes go through
thru, Program Change selects a voice; the synth is any rtmidi port (ALSA or JACK), Dexed or a DX7
behind a USB interface. A live view (rich) shows the knobs, the voice and both links.

Stopping (Ctrl-C, or ``stop``) sends the synth a note-off for every note the thru left held and
All Notes Off, so nothing keeps sounding. A port that is not there when starting is one line
naming the ports there are; a port that vanishes later is a state on the view and is reopened
when it comes back.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.control.config import Config, parse_config
from device.control.loop import ControlLoop
from device.control.ports import Anchor, Decoder
from dxmacro.errors import DxmacroError

DEFAULT_FIRST_CC = 20  # CCs 20..31 are undefined in MIDI 1.0: free on most controllers


@dataclass(frozen=True)
class PlayPorts:
    controller: str
    synth: str
    api: str = "jack"  # or "alsa"
    profile: str = "dexed"
    channel: int = 1


def play_config(ports: PlayPorts, knobs: int, config: Path | None = None) -> Config:
    """The device config ``play`` runs: ``config``'s (its [[knob]] bindings, smoothing, profile)
    with the ports from the command line, or defaults: knob i on CC 20 + i, any channel."""
    import tomllib

    doc: dict[str, Any] = {}
    if config is not None:
        try:
            doc = tomllib.loads(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise DxmacroError(f"{config}: cannot read config ({exc})") from None
    midi = dict(doc.get("midi", {}))
    midi.update(api=ports.api, port=ports.synth, input=ports.controller, input_api=ports.api)
    midi.setdefault("profile", ports.profile)
    midi.setdefault("channel", ports.channel)
    doc["midi"] = midi
    if not doc.get("knob"):
        doc["knob"] = [{"knob": i, "cc": DEFAULT_FIRST_CC + i} for i in range(knobs)]
    return parse_config(doc, config or Path("dxmacro-play.toml"))


def configured_public_key(config: Path) -> Path | None:
    """The key a device config's [model] public_key names (relative to the config's folder, as
    the device reads it), or None when it names none."""
    import tomllib

    try:
        model = tomllib.loads(config.read_text(encoding="utf-8")).get("model", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DxmacroError(f"{config}: cannot read config ({exc})") from None
    key = model.get("public_key") if isinstance(model, dict) else None
    if key is None or key == "":
        return None
    if not isinstance(key, str):
        raise DxmacroError(f"{config}: [model] public_key must be a file name")
    return config.resolve().parent / Path(key).expanduser()


def check_ports(cfg: Config) -> None:
    """One line, before anything starts, when either port is not there."""
    from hardware.errors import HardwareError
    from hardware.midi import list_ports, match_port

    for kind, name, what in (("input", cfg.midi_input, "controller"), ("output", cfg.port, "synth")):
        try:
            names = list_ports(cfg.midi_api, kind)
        except HardwareError as exc:
            raise DxmacroError(str(exc)) from None
        if match_port(names, name) is None:
            raise DxmacroError(f"no MIDI {kind} port {name!r} for the {what} ({cfg.midi_api.upper()} has: "
                               f"{', '.join(names) or 'none'})")


def bank_voices(path: Path, decoder: Decoder) -> tuple[Anchor, ...]:
    """A voice bank's voices for next / previous and Program Change, if made for this model."""
    from conversion import voice_bank

    bank = voice_bank.read(path, None)
    model_id = getattr(getattr(decoder, "bundle", None), "model_id", None)
    if model_id is not None:
        bank.require_model(model_id)
    if bank.latent_size != decoder.latent_size:
        raise DxmacroError(f"{path}: its latents have {bank.latent_size} dimensions, the model {decoder.latent_size}")
    return bank.anchors


class View:
    """The live terminal view: knobs with their positions, pickup state and whether each is tuned to
    the voice, the voice, both links."""

    def __init__(self, loop: ControlLoop, midi_in: Any, port: Any) -> None:
        self.loop, self.midi_in, self.port = loop, midi_in, port

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        loop = self.loop
        state = loop.display_state()
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        table.add_column("knob")
        table.add_column("position", width=34)
        table.add_column("", justify="right")
        table.add_column("state")
        for k in state.knobs:
            pos = 0.0 if k.position is None else k.position
            if k.state == "live" or k.target is None:
                status = k.state
            elif k.state == "wait":
                status = f"untouched ({k.target:.2f})"
            else:
                status = f"turn {k.state} to {k.target:.2f}"
            table.add_row(f"{k.name} (tuned)" if k.tuned else k.name, ProgressBar(total=1.0, completed=pos, width=32),
                          "-" if k.position is None else f"{pos:.3f}", status)
        ctl = "connected" if self.midi_in.state == "connected" else f"absent ({self.midi_in.last_error})"
        syn = "connected" if loop.link_up and self.port.state == "connected" else \
            f"absent ({self.port.last_error})"
        s = loop.stats
        held = sorted(loop.thru.held) if loop.thru is not None else []
        lines = Text.assemble(
            ("voice  ", "bold"), f"{state.voice.strip()!r}   profile {state.profile}   {state.message}\n",
            ("controller  ", "bold"), f"{self.midi_in.name}: {ctl}\n",
            ("synth  ", "bold"), f"{self.port.name}: {syn}\n",
            ("sent  ", "bold"), f"{s.messages} messages, {s.bytes} bytes   notes held {held}   ticks {s.ticks}")
        return Group(table, lines)


def run_play(cfg: Config, decoder: Decoder, *, voices: tuple[Anchor, ...] | None = None,
             duration_s: float | None = None, view: bool = True, stop: threading.Event | None = None,
             out: Any = None) -> ControlLoop:
    """Run until ``duration_s``, ``stop`` or Ctrl-C; leave the synth with nothing sounding."""
    import sys
    import time

    from device.control.midi_port import MidiPort, PortSpec
    from device.runtime import build_loop, open_midi_input
    from hardware.clock import RealClock

    check_ports(cfg)
    stop = stop or threading.Event()
    port = MidiPort(PortSpec(cfg.midi_api, cfg.port, client_name="dxmacro-play"))
    midi_in = open_midi_input(cfg)
    clock = RealClock()
    try:
        loop = build_loop(cfg, decoder=decoder, knobs=None, port=port, clock=clock, midi_in=midi_in)
        if voices:
            loop.set_voices(voices)
        until = clock.now() + duration_s if duration_s else None
        runner = threading.Thread(target=loop.run, kwargs={"until": until, "stop": stop}, name="control-loop",
                                  daemon=True)
        runner.start()
        try:
            if view:
                from rich.console import Console
                from rich.live import Live

                console = Console(file=out or sys.stdout)
                with Live(View(loop, midi_in, port), console=console, refresh_per_second=10, transient=False):
                    while runner.is_alive():
                        runner.join(0.1)
                console.line()
            else:
                while runner.is_alive():
                    runner.join(0.1)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            runner.join(timeout=5)
            time.sleep(0.05)  # what the loop's last tick handed to the port goes first
            loop.release_notes()
    finally:
        midi_in.close()  # type: ignore[union-attr]
        port.close()
    return loop
