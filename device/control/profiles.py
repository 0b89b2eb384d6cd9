"""What to send so the synth ends up with the voice the knobs ask for.

Every profile keeps a shadow of what the synth already has and sends only the
difference, latest values first-come-first-served, as far as the send function
allows (the byte budget may refuse; whatever was refused is recomputed next tick, so
it is coalesced to its latest value):

* ``dx7``: parameter-change sysex (7 bytes each) on the synth's channel, or one
  single-voice dump (163 bytes) when that is fewer bytes than the changes; the byte
  budget (<= 80 % of DIN's 3125 bytes/s) applies.
* ``dexed``: parameter changes over USB / virtual ports at full speed (no budget); a single-voice
  dump only when the link (re)starts, since Dexed's dump handler calls ``panic()`` and would cut
  every sounding note (many parameter changes cost nothing without a budget).
* ``cc``: control changes for synths whose parameters were MIDI-learned to CC numbers
  (config: parameter name -> CC number); the value is scaled to 0..127.
* ``dexed_live``: Dexed with sounding notes that follow the knobs. In Dexed (asb2m10/dexed,
  Source/PluginProcessor.cpp) a sysex parameter change only writes the voice data: notes already
  sounding keep the old values until the next note-on; a single-voice dump calls ``panic()``
  (every note stops). A MIDI-learned CC reaches ``setDxValue``, which sets ``refreshVoice``: the
  next audio block updates every sounding note. So this profile sends each of the 144 sound
  parameters as a CC that the user MIDI-learned once in Dexed (``live_cc``: 38 free CCs on each
  of channels 13-16; Dexed keys a learned CC by channel and number), the voice name and
  TRANSPOSE (whose ``setDxValue`` calls ``panic()``) as sysex parameter changes, and a
  single-voice dump only when the link (re)starts. Dexed scales a CC as
  ``round(value / 127 * steps)``; every DX7 range has <= 127 steps, so the scaling is exact.
* ``dx7``'s hardware: a DX7 Mark I is reported to restart the envelopes of sounding notes on a
  parameter change; a player hears the held note re-attack while a knob turns.

The shadow is forgotten (``invalidate``) when the link drops: whoever is on the other
end after a reconnect gets the whole voice again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from dx7.params import BY_NAME, HIGHS
from dx7.sysex import SINGLE_SIZE, ParameterChange, SingleVoice
from dxmacro.errors import DxmacroError

PARAM_CHANGE_SIZE = 7
Send = Callable[[bytes], bool]  # True when sent; False when the budget refuses (try later)

PROFILES = ("dx7", "dexed", "cc", "dexed_live")
LIVE_CCS = tuple(range(12, 32)) + tuple(range(102, 120))  # undefined / general purpose in MIDI 1.0
LIVE_FIRST_CHANNEL = 12  # 0-based: channels 13, 14, 15, 16
LIVE_PARAMS = 144  # 0..143; 144 (transpose) panics in Dexed's setDxValue: sent as sysex


def live_cc(param: int) -> tuple[int, int]:
    """(channel 0..15, CC) that ``dexed_live`` sends DX7 voice parameter ``param`` (0..143) on."""
    if not 0 <= param < LIVE_PARAMS:
        raise ValueError(f"parameter {param} is not sent as a CC (0..{LIVE_PARAMS - 1})")
    return LIVE_FIRST_CHANNEL + param // len(LIVE_CCS), LIVE_CCS[param % len(LIVE_CCS)]


class SysexProfile:
    """dx7 and dexed: voice parameters as DX7 sysex."""

    def __init__(self, name: str, channel: int) -> None:
        self.name = name
        self.channel = channel
        self.shadow: np.ndarray | None = None  # int64: compared with each target without a conversion
        self.target: list[int] | None = None
        self._dirty: dict[int, None] = {}  # insertion order = first-dirty order

    def invalidate(self) -> None:
        self.shadow = None

    def set_target(self, values: Sequence[int]) -> None:
        self.target = list(values)
        if self.shadow is None:
            return
        differs = np.fromiter(self.target, dtype=np.int64, count=len(self.target)) != self.shadow
        for p in list(self._dirty):
            if not differs[p]:
                del self._dirty[p]
        for p in np.flatnonzero(differs).tolist():
            self._dirty.setdefault(p, None)

    @property
    def pending(self) -> bool:
        return self.target is not None and (self.shadow is None or bool(self._dirty))

    def pump(self, send: Send) -> None:
        if not self.pending:
            return
        assert self.target is not None
        if self.shadow is None or (self.name == "dx7" and PARAM_CHANGE_SIZE * len(self._dirty) > SINGLE_SIZE):
            if send(SingleVoice(bytes(self.target), self.channel).encode()):
                self.shadow = np.array(self.target, dtype=np.int64)
                self._dirty.clear()
            return
        for p in list(self._dirty):
            if not send(ParameterChange(p, self.target[p], self.channel).encode()):
                return
            self.shadow[p] = self.target[p]
            del self._dirty[p]


class CCProfile:
    """Configured DX7 parameters as control changes (value scaled to 0..127)."""

    def __init__(self, channel: int, cc_map: Mapping[str, int]) -> None:
        if not cc_map:
            raise DxmacroError("the cc profile needs [midi.cc_map]: DX7 parameter name = CC number")
        self.name = "cc"
        self.channel = channel
        self.map = [(BY_NAME[p].index, BY_NAME[p].high, int(cc)) for p, cc in cc_map.items()]
        self.shadow: dict[int, int] = {}
        self.want: dict[int, int] = {}

    def invalidate(self) -> None:
        self.shadow.clear()

    def set_target(self, values: Sequence[int]) -> None:
        for idx, high, cc in self.map:
            self.want[cc] = round(values[idx] * 127 / high)

    @property
    def pending(self) -> bool:
        return any(self.shadow.get(cc) != v for cc, v in self.want.items())

    def pump(self, send: Send) -> None:
        send_changed_ccs(self.channel, self.want, self.shadow, send)


class EchoCC:
    """Knob positions as CCs, for a DAW to record the performance (latest value only)."""

    def __init__(self, channel: int, ccs: Sequence[int]) -> None:
        self.channel = channel
        self.ccs = list(ccs)
        self.shadow: dict[int, int] = {}
        self.want: dict[int, int] = {}

    def set_positions(self, positions: Sequence[float | None]) -> None:
        for cc, pos in zip(self.ccs, positions):
            if pos is not None:
                self.want[cc] = min(127, max(0, round(pos * 127)))

    def invalidate(self) -> None:
        self.shadow.clear()

    def pump(self, send: Send) -> None:
        send_changed_ccs(self.channel, self.want, self.shadow, send)


def send_changed_ccs(channel: int, want: dict[int, int], shadow: dict[int, int], send: Send) -> None:
    """Send each CC whose wanted value differs from what the synth has; stop when ``send``
    refuses (the byte budget is spent) so the rest go out on a later tick."""
    for cc, v in want.items():
        if shadow.get(cc) != v:
            if not send(bytes([0xB0 | channel, cc, v])):
                return
            shadow[cc] = v


def panic_messages(channel: int) -> list[bytes]:
    """All Sound Off (120) and All Notes Off (123): the DX7 honours the latter, Dexed both."""
    return [bytes([0xB0 | channel, 120, 0]), bytes([0xB0 | channel, 123, 0])]


class DexedLiveProfile(SysexProfile):
    """dexed_live: sound parameters as MIDI-learned CCs (sounding notes follow), the rest as sysex
    parameter changes, a single-voice dump only when the synth's state is unknown."""

    def __init__(self, channel: int) -> None:
        super().__init__("dexed_live", channel)

    def pump(self, send: Send) -> None:
        if not self.pending:
            return
        assert self.target is not None
        if self.shadow is None:
            if send(SingleVoice(bytes(self.target), self.channel).encode()):
                self.shadow = np.array(self.target, dtype=np.int64)
                self._dirty.clear()
            return
        for p in list(self._dirty):
            v = self.target[p]
            if p < LIVE_PARAMS:
                ch, cc = live_cc(p)
                msg = bytes([0xB0 | ch, cc, round(v * 127 / HIGHS[p])])
            else:
                msg = ParameterChange(p, v, self.channel).encode()
            if not send(msg):
                return
            self.shadow[p] = v
            del self._dirty[p]


def make_profile(name: str, channel: int, cc_map: Mapping[str, int] | None = None) -> SysexProfile | CCProfile:
    if name in ("dx7", "dexed"):
        return SysexProfile(name, channel)
    if name == "dexed_live":
        return DexedLiveProfile(channel)
    if name == "cc":
        return CCProfile(channel, cc_map or {})
    raise DxmacroError(f"unknown MIDI profile {name!r} (known: {', '.join(PROFILES)})")
