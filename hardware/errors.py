"""Errors the hardware layer raises: all are DxmacroError, so the CLI edge prints them as one line."""

from __future__ import annotations

from dxmacro.errors import DxmacroError


class HardwareError(DxmacroError):
    """A part is missing, misconfigured or misbehaving."""


class I2CError(HardwareError, OSError):
    """An I2C transfer failed. Also an OSError (with ``errno``), as smbus2's own errors are,
    so a control loop may treat it as the transient bus error it usually is and retry."""

    def __init__(self, errno_: int | None, message: str) -> None:
        OSError.__init__(self, errno_, message)


class AdcTimeout(HardwareError):
    """A conversion never signalled ready (OS bit stayed 0): the chip is stuck or absent."""


class PortGone(HardwareError):
    """A MIDI port vanished (unplugged, its program quit, or the JACK server died)."""


class JackUnavailable(HardwareError):
    """The JACK server cannot be started or reached."""
