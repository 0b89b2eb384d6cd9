"""How many bytes the MIDI link may carry, and when.

A DIN MIDI cable carries 31250 baud = 3125 bytes/s; a DX7 that receives sysex faster
than it can digest it drops or garbles messages. The dx7 profile therefore never uses
more than a fraction (at most 80 %) of the wire: in ANY one-second window the bytes
sent stay within ``rate`` (a hard sliding-window cap, the same check the tests apply
to the recorded send times), and a token bucket spreads them out so a burst does not
spend the whole second at once and then stall. What cannot be sent now is not queued:
the profiles recompute what the synth lacks on every tick, so a parameter that moved
several times while waiting goes out once, with its latest value (coalescing).
"""

from __future__ import annotations

from collections import deque

DIN_BYTES_PER_S = 3125.0  # 31250 baud, 10 bits per byte
MAX_DIN_FRACTION = 0.8


class ByteBudget:
    def __init__(self, rate: float, burst: float = 200.0, window_s: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError("byte budget rate must be positive")
        self.rate = float(rate)
        self.window_s = window_s
        self.cap = float(rate) * window_s
        self.burst = max(float(burst), 170.0)  # a single-voice dump (163 bytes) must fit
        self._tokens = self.burst
        self._t: float | None = None
        self._sent: deque[tuple[float, int]] = deque()
        self._in_window = 0

    def _refill(self, now: float) -> None:
        if self._t is not None and now > self._t:
            self._tokens = min(self.burst, self._tokens + (now - self._t) * self.rate)
        if self._t is None or now > self._t:
            self._t = now
        while self._sent and self._sent[0][0] <= now - self.window_s:
            self._in_window -= self._sent.popleft()[1]

    def allows(self, now: float, n: int) -> bool:
        self._refill(now)
        return n <= self._tokens and self._in_window + n <= self.cap

    def spend(self, now: float, n: int) -> None:
        self._refill(now)
        self._tokens -= n
        self._sent.append((now, n))
        self._in_window += n

    def in_window(self, now: float) -> int:
        self._refill(now)
        return self._in_window


def busiest_window(times: list[float], sizes: list[int], window_s: float = 1.0) -> int:
    """The most bytes sent inside any ``window_s``-second span (spans start at each message):
    how a byte budget is checked after the fact, from a log of (time, size)."""
    best, j, acc = 0, 0, 0
    for i in range(len(times)):
        acc += sizes[i]
        while times[i] - times[j] >= window_s:
            acc -= sizes[j]
            j += 1
        best = max(best, acc)
    return best
