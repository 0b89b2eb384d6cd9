"""Performance controls: what each button does to the voice.

* next / previous: step through the bundle's anchor voices (sent whole; the knobs
  then take over softly),
* random: a latent code drawn from the prior (standard normal), decoded,
* store: append the current voice to a local bank file (a .syx of 32-voice banks,
  written atomically so a power cut never leaves half a bank),
* panic: All Notes Off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dx7 import Voice
from dx7.errors import DX7Error
from dx7.files import atomic_write, encode_banks, read_voice_file
from device.control.ports import Anchor, Decoder
from dxmacro.errors import DxmacroError


@dataclass(frozen=True)
class VoiceChoice:
    """A voice to switch to, with its latent code (the knobs' starting point)."""

    name: str
    latent: np.ndarray
    voice: Voice | None  # sent as is when known (anchors); else decoded from the latent
    knob_masks: dict[int, np.ndarray] | None = None  # a tuned bank's (dx7.relative.tuned_voice)


def anchor_choice(anchor: Anchor) -> VoiceChoice:
    return VoiceChoice(anchor.name, np.asarray(anchor.latent, dtype=np.float32), anchor.voice, anchor.knob_masks)


class AnchorCycler:
    def __init__(self, anchors: tuple[Anchor, ...]) -> None:
        if not anchors:
            raise DxmacroError("the decoder has no anchor voices (the bundle's manifest lists none)")
        self.anchors = anchors
        self.index = 0

    def current(self) -> VoiceChoice:
        return anchor_choice(self.anchors[self.index])

    def step(self, delta: int) -> VoiceChoice:
        self.index = (self.index + delta) % len(self.anchors)
        return self.current()


class PriorSampler:
    """Random voices from the model's prior: z ~ N(0, I)."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def draw(self, decoder: Decoder) -> VoiceChoice:
        self.count += 1
        z = self.rng.standard_normal(decoder.latent_size).astype(np.float32)
        return VoiceChoice(f"RANDOM {self.count:03d}"[:10], z, None)


class VoiceBank:
    """The performer's stored voices: one .syx file of consecutive 32-voice banks."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def voices(self) -> list[Voice]:
        if not self.path.exists():
            return []
        return [lv.voice for lv in read_voice_file(self.path).voices if not _padding(lv.voice, lv.slot)]

    def store(self, voice: Voice) -> int:
        """Append ``voice``; returns its 1-based number in the file. Raises DxmacroError."""
        try:
            voices = self.voices() + [voice]
            atomic_write(self.path, encode_banks(voices))
        except (DX7Error, OSError) as exc:
            raise DxmacroError(f"cannot store the voice in {self.path}: {exc}") from None
        return len(voices)


_INIT = Voice.init()


def _padding(voice: Voice, slot: int) -> bool:
    """encode_banks pads the last bank with INIT VOICE; those are not stored voices."""
    return voice == _INIT and voice.name == _INIT.name
