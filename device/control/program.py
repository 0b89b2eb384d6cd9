"""What a performer's MIDI input asks of the loop: Program Change picks a voice, a 32-voice
bulk dump brings new ones.

- Program Change n (with Bank Select MSB m, CC 0, for more than 128 voices) selects voice
  ``m * 128 + n`` of the voices the loop steps through (a voice bank's, or the bundle's anchors).
- A DX7 32-voice bulk dump (any librarian, or a DX7 sending its memory) becomes the voices the
  loop steps through. Each voice takes the latent of the voice nearest to it in the model's
  vector space (dx7.layout) among those the bundle carries with their latents: its anchors and,
  for a bundle, its golden vectors (the int8 decoder's own voices). In relative mode the latent is
  only the knobs' starting point: the synth gets the received voice exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from conversion.runtime import Anchor
from dx7 import Voice, layout
from dx7.errors import DX7Error
from dx7.sysex import BulkDump, parse_message
from device.control.ports import Decoder

log = logging.getLogger("dxmacro.device")


@dataclass(frozen=True)
class SelectProgram:
    number: int  # 0.. (bank select MSB * 128 + program)


@dataclass(frozen=True)
class NewVoices:
    voices: tuple[Voice, ...]


class ProgramInput:
    """Turns raw MIDI from the input port into requests; ``channel`` 0..15, or None for any."""

    def __init__(self, channel: int | None = None) -> None:
        self.channel = channel
        self.bank_msb = 0

    def _ours(self, status: int) -> bool:
        return self.channel is None or (status & 0x0F) == self.channel

    def feed(self, data: bytes) -> SelectProgram | NewVoices | None:
        if not data:
            return None
        status = data[0]
        if 0xB0 <= status <= 0xBF and len(data) >= 3 and data[1] == 0 and self._ours(status):
            self.bank_msb = data[2] & 0x7F
        elif 0xC0 <= status <= 0xCF and len(data) >= 2 and self._ours(status):
            return SelectProgram(self.bank_msb * 128 + (data[1] & 0x7F))
        elif status == 0xF0:
            try:
                msg = parse_message(data, "MIDI input")
                if isinstance(msg, BulkDump) and self._ours(msg.channel):
                    return NewVoices(tuple(msg.voices(source="MIDI input")))
            except DX7Error as exc:  # a corrupt dump is refused, and said; the loop goes on
                log.warning("MIDI input: sysex refused", extra={"event": "sysex_refused", "reason": str(exc)})
        return None


def carried_voices(decoder: Decoder) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(DX7 values, latents) of every voice the decoder carries with its latent."""
    values = [np.asarray(a.voice.values[:145]) for a in decoder.anchors]
    latents = [np.asarray(a.latent, np.float32) for a in decoder.anchors]
    golden = getattr(getattr(decoder, "bundle", None), "golden", None)
    if golden:
        for sets in golden["kernels"].values():  # one kernel set's decoded values are enough
            values += list(np.asarray(sets["int8_values"]))
            latents += list(np.asarray(golden["latents"], np.float32))
            break
    return values, latents


def nearest_carried(values: np.ndarray, carried: np.ndarray) -> np.ndarray:
    """(N,) for each voice of ``values`` (N, 145 DX7 values) the index of the nearest one of
    ``carried`` (M, 145): layout vectors, Euclidean. The rule that gives a received voice its
    latent; scripts/knob_untuned.py measures what the knobs do with it."""
    mine, theirs = layout.encode(np.asarray(values)), layout.encode(np.asarray(carried))
    return np.argmin(((mine[:, None, :] - theirs[None, :, :]) ** 2).sum(-1), axis=1)


def with_latents(voices: tuple[Voice, ...], decoder: Decoder) -> tuple[Anchor, ...]:
    """Each voice with the latent of the nearest carried voice (``nearest_carried``)."""
    values, latents = carried_voices(decoder)
    nearest = nearest_carried(np.stack([np.asarray(v.values[:145]) for v in voices]), np.stack(values))
    return tuple(Anchor(v.name, v, latents[int(j)].copy()) for v, j in zip(voices, nearest))
