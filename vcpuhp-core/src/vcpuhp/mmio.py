"""The machine's physical address space as the guest's loads and stores see it.

An :class:`MmioBus` routes an access to the device whose region holds it,
else to RAM, else refuses it with a :class:`~vcpuhp.errors.GuestError`. A
device is anything with ``read(offset, size)`` / ``write(offset, size,
value)`` (:class:`MmioDevice`); offsets are relative to its region. The
interrupt controller is consulted first through ``owns``: the userspace GIC
model takes its distributor and redistributor frames, an in-kernel one takes
nothing (the kernel answers those accesses).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from vcpuhp.errors import GuestError
from vcpuhp.memmap import Region

if TYPE_CHECKING:
    from vcpuhp.irqchip import InterruptController
    from vcpuhp.memory import GuestMemory

ACCESS_SIZES: Final = (1, 2, 4, 8)


class MmioDevice(Protocol):
    """A device register block on the bus."""

    def read(self, offset: int, size: int) -> int:
        """A guest read of ``size`` bytes at ``offset`` in the device's region."""

    def write(self, offset: int, size: int, value: int) -> None:
        """A guest write of ``size`` bytes of ``value`` at ``offset``."""


def check_access(addr: int, size: int, value: int | None = None) -> None:
    """Refuse an access that no CPU can make: a bad size or a value wider than it."""
    if size not in ACCESS_SIZES:
        raise GuestError(f"access size {size} is invalid; valid: 1, 2, 4, 8")
    if value is not None and not 0 <= value < (1 << (8 * size)):
        raise GuestError(f"value {value:#x} does not fit in {size} bytes")
    if addr < 0:
        raise GuestError(f"address {addr:#x} is negative")


class MmioBus:
    """Devices by region, RAM behind them, the interrupt controller in front."""

    def __init__(self, irqchip: InterruptController) -> None:
        self.irqchip = irqchip
        self.memory: GuestMemory | None = None
        self._devices: list[tuple[Region, MmioDevice]] = []

    def add(self, region: Region, device: MmioDevice) -> None:
        """Map ``device`` at ``region``; regions may not overlap."""
        for other, _ in self._devices:
            if region.base < other.end and other.base < region.end:
                raise ValueError(f"MMIO region {region.name} overlaps {other.name}")
        self._devices.append((region, device))

    @property
    def regions(self) -> list[Region]:
        """The device regions, in the order they were added."""
        return [region for region, _ in self._devices]

    def owned_by_irqchip(self, addr: int) -> bool:
        """Whether the access goes to the (userspace) interrupt controller."""
        return self.irqchip.owns(addr)

    def device_at(self, addr: int, size: int) -> tuple[MmioDevice | None, int]:
        """``(device, offset)`` for an access, ``(None, 0)`` for RAM; :class:`GuestError`
        when nothing is there."""
        for region, device in self._devices:
            if region.base <= addr < region.end:
                return device, addr - region.base
        if self.memory is not None and self.memory.contains(addr, size):
            return None, 0
        raise GuestError(f"no device or RAM at {addr:#x} ({size} bytes)")

    def read(self, addr: int, size: int) -> int:
        """A guest read (the interrupt controller's frames excepted: :meth:`owned_by_irqchip`)."""
        device, offset = self.device_at(addr, size)
        if device is None:
            assert self.memory is not None
            return self.memory.read_int(addr, size)
        return int(device.read(offset, size))

    def write(self, addr: int, size: int, value: int) -> None:
        """A guest write (the interrupt controller's frames excepted)."""
        device, offset = self.device_at(addr, size)
        if device is None:
            assert self.memory is not None
            self.memory.write_int(addr, size, value)
            return
        device.write(offset, size, value)


__all__ = ["ACCESS_SIZES", "MmioBus", "MmioDevice", "check_access"]
