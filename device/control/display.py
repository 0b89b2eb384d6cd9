"""The performer's screen: a 128x64 SSD1306-class I2C OLED.

At a glance: the voice name, each knob's semantic name and position, whether a knob
still waits to be picked up after a voice change (and which way to turn it), whether
the knob is tuned to this voice (a square at the row's end: it passes on only the
changes chosen for this voice by rendering on the host, docs/device.md "Tuned knobs";
without it the knob does less of what its name says), and whether the MIDI link is up.
Drawn with PIL through luma.core (the maintained driver family for these panels); the
simulated twin is luma.core's ``dummy`` device, whose frame buffer is saved as PNG for
tests and the demo. The real panel is updated from a background thread: an I2C frame
push takes ~25 ms at 400 kHz, far longer than a loop tick.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

WIDTH, HEIGHT = 128, 64


@dataclass(frozen=True)
class KnobView:
    name: str
    position: float | None  # 0..1, None before the first good read
    state: str  # "live", "up", "down" (turn that way to pick up), "wait"
    target: float | None = None  # where the voice's value sits, while waiting for pickup
    tuned: bool = False  # the voice carries this knob's tuned mask (relative mode)


@dataclass(frozen=True)
class DisplayState:
    voice: str
    knobs: tuple[KnobView, ...] = ()
    link: bool = True
    profile: str = ""
    message: str = ""  # last event worth a glance: "stored #3", "panic", "model swapped"
    extra: dict = field(default_factory=dict, compare=False)


def draw(state: DisplayState, canvas) -> None:
    """Draw ``state`` on a PIL ImageDraw of WIDTH x HEIGHT (1-bit)."""
    canvas.rectangle((0, 0, WIDTH - 1, HEIGHT - 1), outline=0, fill=0)
    canvas.text((0, 0), state.voice[:14], fill=255)
    link = "MIDI" if state.link else "NO MIDI"
    canvas.text((WIDTH - 6 * len(link), 0), link, fill=255)
    if not state.link:
        canvas.line((WIDTH - 6 * len(link), 10, WIDTH - 1, 10), fill=255)
    for i, k in enumerate(state.knobs[:4]):
        y = 11 + i * 10
        canvas.text((0, y), k.name[:7], fill=255)
        x0, x1 = 46, 110
        canvas.rectangle((x0, y + 2, x1, y + 8), outline=255, fill=0)
        if k.position is not None:
            canvas.rectangle((x0, y + 2, x0 + round(k.position * (x1 - x0)), y + 8), outline=255, fill=255)
        if k.target is not None and k.state != "live":
            xt = x0 + round(k.target * (x1 - x0))
            canvas.line((xt, y, xt, y + 10), fill=255)
        mark = {"live": "", "up": ">", "down": "<", "wait": "?"}.get(k.state, "?")
        canvas.text((114, y), mark, fill=255)
        if k.tuned:
            canvas.rectangle((122, y + 3, 125, y + 6), outline=255, fill=255)
    if state.message:
        canvas.text((0, 53), state.message[:21], fill=255)


def render_image(state: DisplayState):
    """The screen as a PIL image (mode "1"), through luma.core's dummy device."""
    from luma.core.device import dummy
    from luma.core.render import canvas

    dev = dummy(width=WIDTH, height=HEIGHT, mode="1")
    with canvas(dev) as c:
        draw(state, c)
    return dev.image.copy()


class PngDisplay:
    """Simulated twin: keeps the last state, renders it on demand (``save``), so the
    loop pays nothing per tick."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self.state: DisplayState | None = None
        self.updates = 0

    def show(self, state: DisplayState) -> None:
        self.state = state
        self.updates += 1

    def save(self, path: str | Path | None = None) -> Path:
        from dx7.files import atomic_write
        import io

        target = Path(path) if path else self.path
        if target is None or self.state is None:
            raise ValueError("nothing to save: no path or no state shown yet")
        buf = io.BytesIO()
        render_image(self.state).save(buf, format="PNG")
        atomic_write(target, buf.getvalue())
        return target


class OledDisplay:
    """An SSD1306 on I2C via luma.oled, fed from a background thread (latest state wins)."""

    def __init__(self, bus: int = 1, address: int = 0x3C) -> None:
        from luma.core.interface.serial import i2c
        from luma.oled.device import ssd1306

        self._device = ssd1306(i2c(port=bus, address=address), width=WIDTH, height=HEIGHT)
        self._state: DisplayState | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="oled", daemon=True)
        self._thread.start()

    def show(self, state: DisplayState) -> None:
        with self._cond:
            self._state = state
            self._cond.notify()

    def _run(self) -> None:
        from luma.core.render import canvas

        shown = None
        while True:
            with self._cond:
                while self._state is shown:
                    self._cond.wait()
                shown = self._state
            try:
                with canvas(self._device) as c:
                    draw(shown, c)  # type: ignore[arg-type]
            except OSError:
                pass  # a flaky I2C bus must not stop the performance; the next state retries
