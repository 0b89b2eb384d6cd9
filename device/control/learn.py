"""MIDI learn: the next control turned binds to a knob, and the binding goes into the device config.

One turn is enough to tell what kind of control it is (``classify``), from the control changes
it sent until it rests for ``quiet_s``:

* CC n (0..31) together with CC n + 32: a 14-bit control;
* a value repeated back to back: a relative encoder (an absolute knob sends only changes); its
  encoding from the values seen: 96..127 (-1, -2 ...) is two's complement; 1..31 together with
  65..95 is sign-magnitude (+1 = 1, -1 = 65); only values around 64 is binary offset (65 = +1,
  63 = -1); only 1..31 (turned one way only) reads as two's complement. Turn an encoder both
  ways when learning it;
* anything else: an absolute 7-bit control.

Writing (``write_binding``): the ``[[knob]]`` table is edited as text, line by line, so every
other line of the file, comments included, stays as it was; the result must parse as a valid
config before it replaces the file (atomically).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from device.control.midi_knobs import CCBinding
from dxmacro.errors import DxmacroError


class Learner:
    """Collects the control changes of one turn; ``done(now)`` gives the binding once the control
    has rested ``quiet_s`` (None before). ``feed`` takes control changes only (True), so notes
    and programs go on as usual while learning."""

    def __init__(self, quiet_s: float = 0.4, step: float = 1.0 / 128) -> None:
        self.quiet_s, self.step = quiet_s, step
        self.seen: list[tuple[int, int, int]] = []  # (channel, control, value)
        self._last: float | None = None
        self.binding: CCBinding | None = None

    def feed(self, data: bytes, now: float) -> bool:
        if len(data) != 3 or (data[0] & 0xF0) != 0xB0 or data[1] >= 120 or data[2] > 0x7F:
            return False
        if self.binding is None:
            self.seen.append((data[0] & 0x0F, data[1], data[2]))
            self._last = now
        return True

    def done(self, now: float) -> CCBinding | None:
        if self.binding is None and self._last is not None and now - self._last >= self.quiet_s:
            self.binding = classify(self.seen, self.step)
        return self.binding


def classify(seen: list[tuple[int, int, int]], step: float = 1.0 / 128) -> CCBinding:
    """The binding a turn's control changes describe (see the module's rules)."""
    if not seen:
        raise DxmacroError("no control change was received")
    channel = seen[0][0]
    mine = [(c, v) for ch, c, v in seen if ch == channel]
    controls = Counter(c for c, _ in mine)
    for c in sorted(controls):
        if c < 32 and c + 32 in controls:
            return CCBinding(c, channel, "14bit")
    control = controls.most_common(1)[0][0]
    values = [v for c, v in mine if c == control]
    if not any(a == b for a, b in zip(values, values[1:])):
        return CCBinding(control, channel, "absolute")
    small = any(1 <= v <= 31 for v in values)
    if any(v >= 96 for v in values):
        mode = "twos"
    elif small and any(65 <= v <= 95 for v in values):
        mode = "sign"
    elif small:
        mode = "twos"
    else:
        mode = "offset"
    return CCBinding(control, channel, mode, step)


_HEADER = re.compile(r"^\s*\[")
_KNOB = re.compile(r"^\s*\[\[\s*knob\s*\]\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=")
_CC_KEYS = ("cc", "cc_channel", "cc_mode", "cc_step", "channel")


def binding_lines(binding: CCBinding) -> list[str]:
    lines = [f"cc = {binding.control}", f"cc_channel = {0 if binding.channel is None else binding.channel + 1}",
             f'cc_mode = "{binding.mode}"']
    if binding.mode in ("twos", "offset", "sign"):
        lines.append(f"cc_step = {binding.step!r}")
    return [line + "\n" for line in lines]


def with_binding(text: str, knob: int, binding: CCBinding) -> str:
    """``text`` (a device config) with [[knob]] number ``knob`` (0-based) bound to ``binding``:
    its cc keys (and ADC ``channel``) replaced, every other line kept; ``knob`` = the number of
    [[knob]] tables appends one (moving the bundle's knob ``knob``)."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if _KNOB.match(line)]
    if knob > len(starts) or knob < 0:
        raise DxmacroError(f"knob {knob + 1}: the config has {len(starts)} [[knob]] tables; learn one of "
                           f"1..{len(starts) + 1}")
    new = binding_lines(binding)
    if knob == len(starts):
        tail = "" if not lines or lines[-1].endswith("\n") else "\n"
        return text + tail + f"\n[[knob]]                    # learned\nknob = {knob}\n" + "".join(new)
    start = starts[knob] + 1
    end = next((i for i in range(start, len(lines)) if _HEADER.match(lines[i])), len(lines))
    body = [line for line in lines[start:end] if not (_KEY.match(line) and _KEY.match(line).group(1) in _CC_KEYS)]
    at = len(body)
    while at and not body[at - 1].strip():  # the new keys go before the blank lines that end the table
        at -= 1
    return "".join(lines[:start] + body[:at] + new + body[at:] + lines[end:])


def write_binding(path: str | Path, knob: int, binding: CCBinding) -> None:
    """Bind [[knob]] ``knob`` (0-based) in the config file, atomically, after checking that the
    edited file is still a valid config."""
    from device.control.config import parse_config
    from dx7.files import atomic_write
    import tomllib

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise DxmacroError(f"{p}: cannot read config ({exc})") from None
    edited = with_binding(text, knob, binding)
    try:
        parse_config(tomllib.loads(edited), p)
    except tomllib.TOMLDecodeError as exc:
        raise DxmacroError(f"{p}: the learned binding would not be valid TOML ({exc}); file left as it was") from None
    atomic_write(p, edited.encode("utf-8"))
