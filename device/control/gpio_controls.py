"""Panel buttons and LEDs through hardware.gpio (the RPi.GPIO interface; rpi-lgpio on the Pi,
FakeGPIO in tests).

Buttons: RPi.GPIO calls the edge callback on its own thread; presses are queued there and
the loop collects them with ``poll`` between ticks (``device.control.ports.Buttons``), so nothing
of the loop's state is touched off its thread. LEDs follow the loop's display state
(``device.control.ports.Display``): "link" lights while the MIDI port is connected, "activity"
toggles on every screen update that changed something.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from hardware.gpio import Button, GPIOModule, Led

LED_NAMES = ("link", "activity")


class GpioButtons:
    def __init__(self, gpio: GPIOModule, pins: Mapping[str, int], bouncetime_ms: int = 30) -> None:
        self._events: list[str] = []
        self._lock = threading.Lock()
        self.buttons = [Button(gpio, pin, self._presser(name), bouncetime_ms) for name, pin in pins.items()]
        self._by_name = dict(zip(pins, self.buttons))

    def held(self, name: str) -> bool:
        """Whether button ``name`` is down now (its level, not an edge): hold panic to learn
        (device.control.learn_service)."""
        button = self._by_name.get(name)
        return button is not None and button.pressed

    def _presser(self, name: str):
        def pressed() -> None:
            with self._lock:
                self._events.append(name)

        return pressed

    def poll(self) -> list[str]:
        with self._lock:
            out, self._events = self._events, []
        return out

    def close(self) -> None:
        for b in self.buttons:
            b.close()


class LedIndicators:
    """A ``Display`` that drives LEDs from the loop's state."""

    def __init__(self, gpio: GPIOModule, pins: Mapping[str, int]) -> None:
        self.leds = {name: Led(gpio, pin) for name, pin in pins.items()}

    def show(self, state: object) -> None:
        link = self.leds.get("link")
        if link is not None:
            link.set(bool(getattr(state, "link", False)))
        activity = self.leds.get("activity")
        if activity is not None:
            activity.toggle()


class Displays:
    """Several displays (the OLED and the LEDs) as one."""

    def __init__(self, displays: Sequence[object]) -> None:
        self.displays = list(displays)

    def show(self, state: object) -> None:
        for d in self.displays:
            d.show(state)  # type: ignore[attr-defined]
