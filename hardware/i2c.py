"""I2C buses: smbus2 on the Pi, and a fake bus with register-level emulated devices.

The protocol is the two smbus2 calls the ADS1x15 driver needs (a pointer-register
write with data, and a pointer-register read), so ``smbus2.SMBus`` itself satisfies it.
The fake bus raises OSError exactly as the kernel does through smbus2: EREMOTEIO (121)
when no device acknowledges the address, EIO (5) for an injected transfer error.
"""

from __future__ import annotations

import errno
import random
import threading
from typing import Protocol, runtime_checkable

from hardware.errors import HardwareError


@runtime_checkable
class I2CBus(Protocol):
    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None: ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...

    def close(self) -> None: ...


@runtime_checkable
class I2CDevice(Protocol):
    """What an emulated chip implements to sit on a FakeI2CBus."""

    def i2c_write(self, register: int, data: bytes) -> None: ...

    def i2c_read(self, register: int, length: int) -> bytes: ...


def open_smbus(bus: int = 1) -> I2CBus:
    """The real bus ``/dev/i2c-<bus>`` (bus 1 is the header's SDA1/SCL1 on every Pi since the B+)."""
    try:
        from smbus2 import SMBus
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise HardwareError("the I2C bus needs smbus2: pip install 'dxmacro[device]'") from exc
    try:
        return SMBus(bus)
    except (FileNotFoundError, PermissionError) as exc:
        raise HardwareError(f"cannot open /dev/i2c-{bus} ({exc.strerror}): enable I2C with dtparam=i2c_arm=on "
                            "in config.txt and add the user to the i2c group") from None


class FakeI2CBus:
    """A bus of emulated devices keyed by 7-bit address, with seeded fault injection.

    ``fault_rate`` is the probability that a transfer (read or write) fails with
    OSError(EIO); reads and writes can be given separate rates. Failed writes do not
    reach the device (the chip NAKs), as on a real bus."""

    def __init__(self, *, fault_rate: float = 0.0, write_fault_rate: float | None = None, seed: int = 0) -> None:
        self._devices: dict[int, I2CDevice] = {}
        self.read_fault_rate = fault_rate
        self.write_fault_rate = fault_rate if write_fault_rate is None else write_fault_rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.transfers = 0
        self.faults = 0
        self.closed = False

    def attach(self, address: int, device: I2CDevice) -> None:
        if not 0x03 <= address <= 0x77:
            raise HardwareError(f"7-bit I2C address must be 0x03..0x77, got 0x{address:02X}")
        if address in self._devices:
            raise HardwareError(f"two devices at I2C address 0x{address:02X}")
        self._devices[address] = device

    def detach(self, address: int) -> None:
        self._devices.pop(address, None)

    def _device(self, address: int, rate: float) -> I2CDevice:
        if self.closed:
            raise OSError(errno.EBADF, "I2C bus is closed")
        self.transfers += 1
        device = self._devices.get(address)
        if device is None:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        if rate > 0 and self._rng.random() < rate:
            self.faults += 1
            raise OSError(errno.EIO, "Input/output error")
        return device

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None:
        with self._lock:
            self._device(i2c_addr, self.write_fault_rate).i2c_write(register, bytes(data))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        with self._lock:
            return list(self._device(i2c_addr, self.read_fault_rate).i2c_read(register, length))

    def close(self) -> None:
        self.closed = True
