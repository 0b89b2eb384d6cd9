"""Turning DX7 voices into audio.

``Renderer`` is the interface every stage renders through; backends plug in behind
it (Dexed's engine here; a VST3 through pedalboard or a recording of a hardware DX7
would be further backends). Audio comes back as mono float32 at the level of
Dexed's plugin output, full scale = 1.0.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from dx7 import Voice
from dxmacro.errors import DxmacroError

# dexed-py returns the engine's output before the plugin's final gain stage; Dexed's
# plugin output is exactly 1/8 of it (measured against ../shared/dx7/golden: the RMS
# ratio is 0.12500 +- 1e-7 on every one of the 128 references, see docs/rendering.md).
DEXED_PY_TO_PLUGIN_GAIN = 0.125
OPERATORS_ALL_ON = 0x3F


@dataclass(frozen=True)
class Note:
    """What to play: a MIDI note held for ``hold`` seconds within ``duration`` seconds."""

    note: int = 60
    velocity: int = 100
    hold: float = 0.75
    duration: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.note <= 127:
            raise DxmacroError(f"note must be 0..127, got {self.note}")
        if not 1 <= self.velocity <= 127:
            raise DxmacroError(f"velocity must be 1..127, got {self.velocity}")
        if not 0 < self.duration <= 60:
            raise DxmacroError(f"duration must be in (0, 60] seconds, got {self.duration}")
        if not 0 <= self.hold <= self.duration:
            raise DxmacroError(f"hold must be within 0..duration ({self.duration}), got {self.hold}")


@runtime_checkable
class Renderer(Protocol):
    sample_rate: int

    def render(self, voice: Voice, note: Note) -> np.ndarray:
        """Mono float32 audio, ``round(note.duration * sample_rate)`` samples."""
        ...


class DexedRenderer:
    """Dexed's own engine (the "Mark I" engine, Dexed's default) through dexed-py.

    One instance is not for concurrent use; give each worker thread its own (dexed-py
    releases the GIL while it computes, so threads overlap)."""

    def __init__(self, sample_rate: int = 44100) -> None:
        if not 8000 <= sample_rate <= 192000:
            raise DxmacroError(f"sample rate must be 8000..192000 Hz, got {sample_rate}")
        try:
            import dexed
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise DxmacroError("the Dexed renderer needs dexed-py: pip install 'dxmacro[host]'") from exc
        self._dexed = dexed
        self.sample_rate = int(sample_rate)
        self._synth = dexed.DexedSynth(sample_rate=float(sample_rate))

    def render(self, voice: Voice, note: Note) -> np.ndarray:
        patch = self._dexed.Patch.from_sysex(voice.to_unpacked() + bytes([OPERATORS_ALL_ON]))
        self._synth.load_patch(patch)
        audio = self._synth.render(note.note, note.velocity, note.hold, note.duration)
        return np.asarray(audio, dtype=np.float32) * np.float32(DEXED_PY_TO_PLUGIN_GAIN)

    # the device's bench tools take this renderer through device.bench.audio.NoteRenderer
    def render_note(self, voice: Voice, note: int, velocity: int, hold: float, duration: float) -> np.ndarray:
        return self.render(voice, Note(note, velocity, hold, duration))

    def write_wav(self, path: str | Path, audio: np.ndarray) -> None:
        write_wav(str(path), audio, self.sample_rate)


BACKENDS = {"dexed": DexedRenderer}


def make_renderer(backend: str = "dexed", sample_rate: int = 44100) -> Renderer:
    try:
        cls = BACKENDS[backend]
    except KeyError:
        raise DxmacroError(f"unknown renderer backend {backend!r} (known: {', '.join(BACKENDS)})") from None
    return cls(sample_rate)


def write_wav(path: str, audio: np.ndarray, sample_rate: int) -> None:
    """32-bit float WAV, written atomically."""
    import io

    from scipy.io import wavfile

    from dx7.files import atomic_write

    buf = io.BytesIO()
    wavfile.write(buf, sample_rate, np.asarray(audio, dtype=np.float32))
    atomic_write(path, buf.getvalue())


MIN_WAV_RATE, MAX_WAV_RATE = 4000, 384_000  # what audio hardware records; outside it is a damaged header


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """Mono float audio in [-1, 1] from a 16/32-bit integer or float WAV."""
    from scipy.io import wavfile

    try:
        with warnings.catch_warnings(record=True) as heard:
            warnings.simplefilter("always", wavfile.WavFileWarning)
            rate, data = wavfile.read(path)
    except (OSError, ValueError, EOFError, struct.error) as exc:  # struct.error: a header cut short
        raise DxmacroError(f"{path}: cannot read WAV ({exc or type(exc).__name__})") from None
    for w in heard:  # scipy reads a file cut short in its samples as far as it goes, and warns
        if "EOF" in str(w.message):
            raise DxmacroError(f"{path}: cannot read WAV (cut short: {w.message})")
    if not MIN_WAV_RATE <= rate <= MAX_WAV_RATE:  # 0 Hz divides by zero; 4294967295 Hz allocates 42 GiB
        raise DxmacroError(f"{path}: sample rate {rate} Hz is outside {MIN_WAV_RATE}..{MAX_WAV_RATE} Hz")
    if data.dtype == np.int16:
        audio = data.astype(np.float32) / 32768.0
    elif data.dtype == np.int32:
        audio = data.astype(np.float32) / 2147483648.0
    elif data.dtype == np.uint8:
        audio = (data.astype(np.float32) - 128.0) / 128.0
    else:
        audio = data.astype(np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if not np.isfinite(audio).all():
        raise DxmacroError(f"{path}: holds samples that are not finite numbers (NaN or infinity)")
    return audio, int(rate)
