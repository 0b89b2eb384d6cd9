"""Buttons and LEDs through the RPi.GPIO interface, and a fake with pins tests can press.

On the Pi the module is ``RPi.GPIO`` as provided by rpi-lgpio (a drop-in over lgpio
that works on the Pi 5's RP1 and every Pi with a gpiochip, and ships wheels, where
the original RPi.GPIO builds from source and cannot drive a Pi 5). It is imported
lazily so laptops and CI never need it. ``FakeGPIO`` implements the same subset
(setmode, setup, input, output, add_event_detect with bouncetime, remove_event_detect,
cleanup) with RPi.GPIO's semantics: BCM numbering, pull-ups reading 1 when open,
edge callbacks suppressed for ``bouncetime`` ms after the last one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from hardware.clock import Clock, RealClock
from hardware.errors import HardwareError

BCM, BOARD = 11, 10
IN, OUT = 1, 0
LOW, HIGH = 0, 1
PUD_OFF, PUD_DOWN, PUD_UP = 20, 21, 22
RISING, FALLING, BOTH = 31, 32, 33


class GPIOModule(Protocol):
    """The part of the RPi.GPIO module interface we use (constants as attributes too)."""

    def setmode(self, mode: int) -> None: ...
    def setwarnings(self, flag: bool) -> None: ...
    def setup(self, channel: int, direction: int, pull_up_down: int = ..., initial: int = ...) -> None: ...
    def input(self, channel: int) -> int: ...
    def output(self, channel: int, value: int) -> None: ...
    def add_event_detect(self, channel: int, edge: int, callback: Callable[[int], Any] | None = ...,
                         bouncetime: int = ...) -> None: ...
    def remove_event_detect(self, channel: int) -> None: ...
    def cleanup(self, channel: int | None = ...) -> None: ...


def real_gpio() -> GPIOModule:
    """The RPi.GPIO module (from rpi-lgpio), BCM numbering."""
    try:
        import RPi.GPIO as GPIO  # noqa: N814 - the module's own name
    except ImportError as exc:
        raise HardwareError("GPIO needs the RPi.GPIO interface: pip install rpi-lgpio (on the Pi)") from exc
    except RuntimeError as exc:  # raised on import when not on a Pi / no gpiochip access
        raise HardwareError(f"cannot use GPIO here: {exc}") from None
    GPIO.setwarnings(False)
    GPIO.setmode(GPIO.BCM)
    return GPIO


class FakeGPIO:
    """Simulated pins. ``press``/``release`` drive an input's level as a switch to GND would
    (buttons are wired active-low with the internal pull-up); ``level`` reads an output.
    Edge callbacks run in the caller's thread, synchronously (RPi.GPIO runs them on its own
    thread; code that works with the fake must not depend on which)."""

    BCM, BOARD, IN, OUT, LOW, HIGH = BCM, BOARD, IN, OUT, LOW, HIGH
    PUD_OFF, PUD_DOWN, PUD_UP, RISING, FALLING, BOTH = PUD_OFF, PUD_DOWN, PUD_UP, RISING, FALLING, BOTH

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or RealClock()
        self.mode: int | None = None
        self._dir: dict[int, int] = {}
        self._pull: dict[int, int] = {}
        self._driven: dict[int, int | None] = {}  # external drive on inputs; None = floating
        self._out: dict[int, int] = {}
        self._events: dict[int, tuple[int, Callable[[int], Any] | None, float]] = {}
        self._last_event: dict[int, float] = {}
        self._lock = threading.RLock()
        self.history: list[tuple[float, int, int]] = []  # (time, pin, level) of every output change

    # -- RPi.GPIO API -------------------------------------------------------------------
    def setwarnings(self, flag: bool) -> None:
        pass

    def setmode(self, mode: int) -> None:
        if mode not in (BCM, BOARD):
            raise ValueError("An invalid mode was passed to setmode()")
        self.mode = mode

    def _check(self, channel: int) -> None:
        if self.mode is None:
            raise RuntimeError("Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or GPIO.setmode(GPIO.BCM)")
        if not 0 <= channel <= 27:
            raise ValueError("The channel sent is invalid on a Raspberry Pi")

    def setup(self, channel: int, direction: int, pull_up_down: int = PUD_OFF, initial: int = -1) -> None:
        self._check(channel)
        with self._lock:
            self._dir[channel] = direction
            if direction == IN:
                self._pull[channel] = pull_up_down
                self._driven.setdefault(channel, None)
            else:
                self._set_out(channel, LOW if initial == -1 else initial)

    def input(self, channel: int) -> int:
        self._check(channel)
        with self._lock:
            if channel not in self._dir:
                raise RuntimeError("You must setup() the GPIO channel first")
            if self._dir[channel] == OUT:
                return self._out[channel]
            return self._level(channel)

    def output(self, channel: int, value: int) -> None:
        self._check(channel)
        with self._lock:
            if self._dir.get(channel) != OUT:
                raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
            self._set_out(channel, HIGH if value else LOW)

    def add_event_detect(self, channel: int, edge: int, callback: Callable[[int], Any] | None = None,
                         bouncetime: int = 0) -> None:
        self._check(channel)
        with self._lock:
            if self._dir.get(channel) != IN:
                raise RuntimeError("You must setup() the GPIO channel as an input first")
            if channel in self._events:
                raise RuntimeError("Conflicting edge detection already enabled for this GPIO channel")
            self._events[channel] = (edge, callback, bouncetime / 1000.0)

    def remove_event_detect(self, channel: int) -> None:
        with self._lock:
            self._events.pop(channel, None)

    def cleanup(self, channel: int | None = None) -> None:
        with self._lock:
            pins = [channel] if channel is not None else list(self._dir)
            for pin in pins:
                for table in (self._dir, self._pull, self._driven, self._out, self._events, self._last_event):
                    table.pop(pin, None)

    # -- the simulated world ------------------------------------------------------------------
    def _level(self, pin: int) -> int:
        driven = self._driven.get(pin)
        if driven is not None:
            return driven
        return HIGH if self._pull.get(pin) == PUD_UP else LOW  # floating with no pull reads low here

    def _set_out(self, pin: int, level: int) -> None:
        if self._out.get(pin) != level:
            self.history.append((self.clock.now(), pin, level))
        self._out[pin] = level

    def drive(self, pin: int, level: int | None) -> None:
        """Drive an input pin from outside (None: let it float to its pull)."""
        callbacks = []
        with self._lock:
            before = self._level(pin)
            self._driven[pin] = level
            after = self._level(pin)
            if before != after and pin in self._events:
                edge, callback, bounce = self._events[pin]
                rising = after == HIGH
                wanted = edge == BOTH or (edge == RISING) == rising
                now = self.clock.now()
                last = self._last_event.get(pin)
                if wanted and (last is None or now - last >= bounce):
                    self._last_event[pin] = now
                    if callback is not None:
                        callbacks.append(callback)
        for callback in callbacks:
            callback(pin)

    def press(self, pin: int) -> None:
        self.drive(pin, LOW)

    def release(self, pin: int) -> None:
        self.drive(pin, None)

    def bounce(self, pin: int, transitions: int = 6, interval: float = 0.001) -> None:
        """A mechanical press: the contact chatters ``transitions`` times, ``interval`` apart, then stays closed."""
        for k in range(transitions):
            self.drive(pin, LOW if k % 2 == 0 else None)
            self.clock.sleep(interval)
        self.press(pin)

    def level(self, pin: int) -> int:
        with self._lock:
            return self._out.get(pin, LOW)


class Button:
    """An active-low push button on a BCM pin with the internal pull-up and debounce."""

    def __init__(self, gpio: GPIOModule, pin: int, on_press: Callable[[], Any] | None = None,
                 bouncetime_ms: int = 30) -> None:
        self.gpio, self.pin = gpio, pin
        gpio.setup(pin, IN, pull_up_down=PUD_UP)
        if on_press is not None:
            gpio.add_event_detect(pin, FALLING, callback=lambda _ch: on_press(), bouncetime=bouncetime_ms)

    @property
    def pressed(self) -> bool:
        return self.gpio.input(self.pin) == LOW

    def close(self) -> None:
        self.gpio.remove_event_detect(self.pin)


class Led:
    """An LED from a BCM pin through a resistor to GND (active high)."""

    def __init__(self, gpio: GPIOModule, pin: int, on: bool = False) -> None:
        self.gpio, self.pin = gpio, pin
        gpio.setup(pin, OUT, initial=HIGH if on else LOW)
        self._on = on

    @property
    def is_on(self) -> bool:
        return self._on

    def set(self, on: bool) -> None:
        self._on = bool(on)
        self.gpio.output(self.pin, HIGH if on else LOW)

    def on(self) -> None:
        self.set(True)

    def off(self) -> None:
        self.set(False)

    def toggle(self) -> None:
        self.set(not self._on)
