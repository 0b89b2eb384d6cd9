"""The device demo: simulated knobs play a scripted performance through the real
control loop (dx7 profile, byte budget, soft takeover, buttons), MIDI goes to an
emulated DX7, and everything that was sent is written out, checked, rendered to audio
and plotted.

Writes to the output folder: sent.jsonl (every message with its time), sent.syx (the
sysex messages), final_voice.syx / final_voice.json, screen.png (the OLED twin at the
end), knobs.png (knob positions and bytes sent over time), performance.wav (the notes
of the script, each played with the voice the DX7 held at that moment, rendered by the
renderer passed in: Dexed's engine from ``dxmacro demo``). Runs on a simulated clock, so it takes seconds, not the performance's
length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dx7.files import atomic_write, read_voice_file, voices_to_json
from dx7.sysex import SingleVoice, parse_message
from device.bench.audio import NoteRenderer
from device.control.budget import DIN_BYTES_PER_S, MAX_DIN_FRACTION, busiest_window
from device.control.config import parse_config
from device.control.controls import VoiceBank
from device.control.display import PngDisplay
from device.control.program import with_latents
from device.twins.performance import Performance, load_performance, parse_performance
from device.runtime import build_loop, make_decoder, simulated_knobs
from device.twins.sim import EmulatedDX7, ScriptedButtons, ScriptedMidiIn, SimClock

DEMO_PERFORMANCE = """
duration_s = 40.0
start = [0.5, 0.5, 0.5, 0.5]

# INIT VOICE is up; knob 0 must first be picked up (turn it through the voice's value)
[[move]]
t = 1.0
knob = 0
to = 0.0
over = 1.5
[[move]]
t = 3.0
knob = 0
to = 1.0
over = 4.0
[[move]]
t = 5.0
knob = 1
to = 0.05
over = 2.0
[[move]]
t = 8.0
knob = 1
to = 0.9
over = 3.0
[[press]]
t = 12.0
button = "next"
[[move]]
t = 13.0
knob = 2
to = 0.0
over = 2.0
[[move]]
t = 15.5
knob = 2
to = 1.0
over = 3.0
[[move]]
t = 14.0
knob = 3
to = 1.0
over = 5.0
[[press]]
t = 20.0
button = "random"
[[move]]
t = 21.0
knob = 0
to = 0.0
over = 3.0
[[move]]
t = 21.0
knob = 1
to = 0.2
over = 3.0
[[press]]
t = 26.0
button = "store"
[[press]]
t = 28.0
button = "previous"
[[move]]
t = 29.0
knob = 3
to = 0.0
over = 4.0
[[move]]
t = 30.0
knob = 2
to = 0.5
over = 0.05
[[press]]
t = 38.0
button = "panic"

# Program Changes from the performer's MIDI input: voices of the cartridge (0-based)
[[program]]
t = 22.5
number = 5
[[program]]
t = 34.0
number = 2

[[note]]
t = 0.5
note = 60
[[note]]
t = 4.5
note = 64
[[note]]
t = 8.5
note = 67
[[note]]
t = 12.5
note = 60
[[note]]
t = 16.5
note = 55
[[note]]
t = 20.5
note = 60
[[note]]
t = 24.5
note = 72
[[note]]
t = 28.5
note = 60
[[note]]
t = 32.5
note = 48
[[note]]
t = 36.5
note = 60
"""

SAMPLE_STEP_S = 0.01


@dataclass
class DemoResult:
    messages: int
    bytes: int
    max_window_bytes: int
    synth_errors: int
    final_matches: bool
    files: list[Path]
    heard: list = field(default_factory=list)  # the voice the DX7 held at each scripted note



def run_demo(out: str | Path, *, script: str | Path | None = None, renderer: NoteRenderer | None = None,
             seed: int = 0, bundle: str | Path | None = None, public_key: str | Path | None = None,
             cartridge: str | Path | None = None,
             echo=print) -> DemoResult:
    """The scripted performance on ``bundle`` (a model.dxm, verified with ``public_key``; default:
    the development decoder) with relative knobs, its notes rendered to performance.wav by
    ``renderer`` when one is given.
    ``cartridge``: a .syx whose voices next / previous and Program Change step through (each
    with the latent of the nearest voice the bundle carries); default: the bundle's anchors."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    perf: Performance = load_performance(script) if script else parse_performance(
        __import__("tomllib").loads(DEMO_PERFORMANCE), "demo performance")
    model = {"decoder": "bundle", "bundle": str(Path(bundle).resolve())} if bundle else {}
    if bundle and public_key:  # the device verifies a bundle's signature before it plays it
        model["public_key"] = str(Path(public_key).resolve())
    cfg = parse_config({"device": {"random_seed": seed, "bank_file": "bank.syx"}, "model": model,
                        "display": {"kind": "png", "png": "screen.png"},
                        "simulate": {"fail_rate": 0.02}}, out / "demo.toml")
    clock = SimClock()
    knob_script = perf.knob_script()
    adc = simulated_knobs(cfg, clock, knob_script.position, seed=seed)
    synth = EmulatedDX7(clock, cfg.channel - 1)
    display = PngDisplay(out / "screen.png")
    bank = out / "bank.syx"
    bank.unlink(missing_ok=True)
    decoder = make_decoder(cfg)
    loop = build_loop(cfg, decoder=decoder, knobs=adc, port=synth, clock=clock,
                      buttons=ScriptedButtons(clock, perf.presses), display=display,
                      midi_in=ScriptedMidiIn(clock, perf.programs))
    if cartridge is not None:
        voices = [v.voice for v in read_voice_file(cartridge).voices]
        loop.set_voices(with_latents(tuple(voices), decoder))
        echo(f"cartridge {cartridge}: {len(voices)} voices under relative knobs")
    times, physical, deliberate = [], [], []
    notes = list(perf.notes)
    note_voices = []
    t = 0.0
    while t < perf.duration_s:
        t = min(perf.duration_s, t + SAMPLE_STEP_S)
        loop.run(until=t)
        while notes and notes[0].t <= clock.now():
            note_voices.append((notes.pop(0), synth.voice))
        times.append(clock.now())
        physical.append([knob_script.position(k, clock.now()) for k in range(cfg.adc_channels)])
        deliberate.append([np.nan if ch.position is None else ch.position for ch in loop.channels])

    files = []
    log_lines, sysex = [], b""
    for r in synth.log:
        kind = type(parse_message(r.data)).__name__ if r.data[0] == 0xF0 else f"channel 0x{r.data[0]:02X}"
        log_lines.append(json.dumps({"t": round(r.t, 6), "bytes": len(r.data), "kind": kind, "hex": r.data.hex()}))
        if r.data[0] == 0xF0:
            sysex += r.data
    for name, data in (("sent.jsonl", ("\n".join(log_lines) + "\n").encode()), ("sent.syx", sysex),
                       ("final_voice.syx", SingleVoice.of(synth.voice, cfg.channel - 1).encode()),
                       ("final_voice.json", voices_to_json([synth.voice]).encode())):
        atomic_write(out / name, data)
        files.append(out / name)
    files.append(display.save())
    if bank.exists():
        files.append(bank)
    files.append(_plot(out / "knobs.png", times, physical, deliberate, synth, loop, perf))
    if renderer is not None:
        files.append(_render(renderer, out / "performance.wav", note_voices, perf.duration_s))
    window = busiest_window([r.t for r in synth.log], [len(r.data) for r in synth.log])
    result = DemoResult(len(synth.log), synth.bytes_sent(), window, len(synth.errors), synth.voice == loop.voice,
                        files, [v for _, v in note_voices])
    echo(f"performance of {perf.duration_s:.0f} s: {result.messages} MIDI messages, {result.bytes} bytes to the "
         f"emulated DX7 ({len(synth.errors)} rejected), busiest second {window} bytes (budget "
         f"{MAX_DIN_FRACTION * DIN_BYTES_PER_S:.0f}); voices: {', '.join(sorted({v.name.strip() for _, v in note_voices}))}")
    echo(f"final voice {synth.voice.name.strip()!r} (DX7 and loop agree: {result.final_matches}); "
         f"stored in bank: {len(VoiceBank(bank).voices()) if bank.exists() else 0}")
    for f in files:
        echo(f"  wrote {f}")
    return result


def _plot(path: Path, times, physical, deliberate, synth: EmulatedDX7, loop, perf: Performance) -> Path:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phys, deli = np.array(physical), np.array(deliberate)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, height_ratios=(2, 1))
    for k, m in enumerate(loop.mappings):
        line, = ax1.plot(times, phys[:, k], lw=0.8, alpha=0.5)
        ax1.plot(times, deli[:, k], lw=1.5, color=line.get_color(), label=f"knob {k}: {m.name}")
    for t, b in perf.presses:
        ax1.axvline(t, color="grey", ls=":", lw=0.8)
        ax1.text(t, 1.02, b, fontsize=7, ha="center")
    ax1.set_ylabel("knob position")
    ax1.set_ylim(-0.02, 1.08)
    ax1.legend(loc="lower right", fontsize=7, ncol=2)
    ax1.set_title("demo: physical (thin) and deliberate (thick) knob positions")
    st = np.array([r.t for r in synth.log])
    cum = np.concatenate([[0], np.cumsum([len(r.data) for r in synth.log])])
    grid = np.arange(0, perf.duration_s, SAMPLE_STEP_S)
    last_second = cum[np.searchsorted(st, grid, side="right")] - cum[np.searchsorted(st, grid - 1.0, side="right")]
    ax2.plot(grid, last_second, lw=1)
    ax2.axhline(MAX_DIN_FRACTION * DIN_BYTES_PER_S, color="red", ls="--", lw=0.8, label="dx7 budget (80 % of DIN)")
    ax2.set_ylabel("bytes in the last 1 s")
    ax2.set_xlabel("seconds")
    ax2.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return path


def _render(renderer: NoteRenderer, path: Path, note_voices, duration_s: float) -> Path:
    sr = renderer.sample_rate
    mix = np.zeros(int((duration_s + 2.0) * sr), dtype=np.float32)
    for ev, voice in note_voices:
        audio = renderer.render_note(voice, ev.note, ev.velocity, ev.hold, ev.hold + 1.0)
        start = int(ev.t * sr)
        end = min(len(mix), start + len(audio))
        mix[start:end] += audio[: end - start]
    peak = float(np.max(np.abs(mix))) or 1.0
    if peak > 0.99:
        mix *= 0.99 / peak
    renderer.write_wav(path, mix)
    return path
