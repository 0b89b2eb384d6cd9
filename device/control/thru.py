"""Thru: what the performer plays on the controller reaches the synth through the loop's one sender.

Notes, pitch bend, mod wheel (CC 1), sustain (CC 64), channel and polyphonic aftertouch pass,
moved onto the synth's channel. They go out through the loop's own ``send``, between whole
messages, so a note can never land inside a sysex message (each ``send`` is one complete
message), and the byte budget counts them; they go out before voice data, in arrival order,
and wait (in order, never dropped) while the budget is spent.

The thru remembers which notes are held (and whether sustain is down) so that stopping, or a
controller that vanishes, releases them: ``release()`` gives the note-offs, sustain off and
All Notes Off that leave the synth silent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

PASSED_CCS = (1, 64)  # mod wheel, sustain
MAX_QUEUED = 512  # a performer cannot outplay this; a stalled link must not grow memory forever


def passes(data: bytes) -> bool:
    """Whether a message is one the thru forwards (a complete, well-formed channel message)."""
    if not data or any(b > 0x7F for b in data[1:]):
        return False
    kind = data[0] & 0xF0
    if kind in (0x80, 0x90, 0xA0, 0xE0):
        return len(data) == 3
    if kind == 0xD0:
        return len(data) == 2
    return kind == 0xB0 and len(data) == 3 and data[1] in PASSED_CCS


class Thru:
    def __init__(self, channel: int) -> None:
        self.channel = channel  # the synth's, 0..15
        self.queue: deque[bytes] = deque()
        self.held: dict[int, None] = {}  # notes on at the synth, in the order they were struck
        self.sustain = False
        self.passed = 0
        self.dropped = 0

    def push(self, data: bytes) -> bool:
        """Queue a message if it is one to pass; True when taken."""
        if not passes(data):
            return False
        if len(self.queue) >= MAX_QUEUED:
            self.dropped += 1
            return True
        self.queue.append(bytes([(data[0] & 0xF0) | self.channel]) + bytes(data[1:]))
        return True

    def pump(self, send: Callable[[bytes], bool]) -> None:
        """Send queued messages in order until ``send`` refuses (the budget): the rest wait."""
        while self.queue:
            msg = self.queue[0]
            if not send(msg):
                return
            self.queue.popleft()
            self.passed += 1
            self._track(msg)

    def _track(self, msg: bytes) -> None:
        kind = msg[0] & 0xF0
        if kind == 0x90 and msg[2] > 0:
            self.held[msg[1]] = None
        elif kind in (0x80, 0x90):
            self.held.pop(msg[1], None)
        elif kind == 0xB0 and msg[1] == 64:
            self.sustain = msg[2] >= 64

    def release(self) -> list[bytes]:
        """What silences everything the thru left sounding: queued note-ons are dropped, held
        notes get their note-off, sustain goes up, then All Notes Off for good measure."""
        self.queue.clear()
        ch = self.channel
        out = [bytes([0x80 | ch, n, 0]) for n in self.held]
        if self.sustain:
            out.append(bytes([0xB0 | ch, 64, 0]))
        out.append(bytes([0xB0 | ch, 123, 0]))
        self.held.clear()
        self.sustain = False
        return out
