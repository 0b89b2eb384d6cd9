"""A Dexed twin: what Dexed does with the MIDI it receives, at the level of its voice data and the
notes it is sounding (beside hardware.dx7_emulator, which models a DX7's memory).

From Dexed's source (asb2m10/dexed, Source/PluginProcessor.cpp and PluginParam.cpp):

* a sysex parameter change writes the voice data and nothing else: sounding notes keep the
  values they started with, the next note-on takes the new ones;
* a single-voice dump calls ``panic()`` first: every sounding note stops at once;
* a control change that the user MIDI-learned (keyed by channel and CC number) sets the parameter
  through ``setDxValue`` (value ``round(cc / 127 * steps)``), which sets ``refreshVoice``: the next
  audio block updates every sounding note to the new data (envelope state and phase kept);
  TRANSPOSE's ``setDxValue`` also calls ``panic()``;
* CC 120 is ``panic()``, CC 123 releases every held key; note-on / note-off as usual.

``history`` keeps, per note struck, when it started and which voice data it sounded with from
when on, and when it stopped (key up, or cut by a panic), so a host-side renderer can render what
the note sounded like (tests/test_dexed_live.py renders it with Dexed's engine through dexed-py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dx7 import DX7Error, Voice
from dx7.params import HIGHS
from dx7.sysex import OP_SWITCH_PARAM, ParameterChange, SingleVoice, parse_message

TRANSPOSE = 144


@dataclass
class SoundingNote:
    note: int
    velocity: int
    start: float
    voices: list[tuple[float, tuple[int, ...]]] = field(default_factory=list)  # (from time, voice data)
    released: float | None = None  # key up
    cut: float | None = None  # stopped by panic()


class DexedState:
    """``learned``: (channel 0..15, CC) -> DX7 parameter index, the CCs mapped in Dexed's UI."""

    def __init__(self, learned: dict[tuple[int, int], int] | None = None) -> None:
        self.learned = dict(learned or {})
        self.data = list(Voice.init().values)
        self.sounding: dict[int, SoundingNote] = {}
        self.history: list[SoundingNote] = []
        self.refreshes = 0
        self.panics = 0

    @property
    def voice(self) -> Voice:
        return Voice(tuple(self.data))

    def receive(self, data: bytes, t: float) -> None:
        if not data:
            return
        status = data[0]
        if status == 0xF0:
            self._sysex(data, t)
            return
        kind = status & 0xF0
        if kind == 0x90 and len(data) == 3 and data[2] > 0:
            old = self.sounding.pop(data[1], None)
            if old is not None:
                old.released = t
            note = SoundingNote(data[1], data[2], t, [(t, tuple(self.data))])
            self.sounding[data[1]] = note
            self.history.append(note)
        elif kind in (0x80, 0x90) and len(data) == 3:
            note = self.sounding.pop(data[1], None)
            if note is not None:
                note.released = t
        elif kind == 0xB0 and len(data) == 3:
            self._control(status & 0x0F, data[1], data[2], t)

    def _control(self, channel: int, cc: int, value: int, t: float) -> None:
        if cc == 120:
            self.panic(t)
        elif cc == 123:
            for n in list(self.sounding):
                self.sounding.pop(n).released = t
        elif (channel, cc) in self.learned:
            p = self.learned[(channel, cc)]
            v = round(value / 127 * HIGHS[p])
            if self.data[p] == v:  # setDxValue ignores a value it already has
                return
            self.data[p] = v
            if p == TRANSPOSE:
                self.panic(t)
            self.refreshes += 1
            for note in self.sounding.values():
                note.voices.append((t, tuple(self.data)))

    def _sysex(self, data: bytes, t: float) -> None:
        try:
            msg = parse_message(data)
        except DX7Error:
            return
        if isinstance(msg, SingleVoice):
            self.panic(t)
            self.data = list(msg.voice().values)
        elif isinstance(msg, ParameterChange) and msg.parameter != OP_SWITCH_PARAM:
            self.data[msg.parameter] = msg.value  # sounding notes are not refreshed

    def panic(self, t: float) -> None:
        self.panics += 1
        for n in list(self.sounding):
            self.sounding.pop(n).cut = t


class DexedTwinPort:
    """The twin as a ``MidiOut`` for the control loop, stamped by ``clock``."""

    def __init__(self, state: DexedState, clock) -> None:
        self.state, self.clock = state, clock
        self.sent: list[tuple[float, bytes]] = []

    def send(self, data: bytes) -> None:
        t = self.clock.now()
        self.sent.append((t, bytes(data)))
        self.state.receive(bytes(data), t)

    def reopen(self) -> None:
        pass
