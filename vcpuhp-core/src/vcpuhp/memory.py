"""Guest RAM: one host buffer that every backend maps.

RAM is reserved when the machine is realized, not checked in advance: like
QEMU, a size larger than the host has may still work when the kernel
overcommits (pages are only used when the guest touches them). When the
host refuses the mapping, the error is a :class:`~vcpuhp.errors.ConfigError`
naming the size asked for and what the host says is available.
"""

from __future__ import annotations

import ctypes
import mmap
from pathlib import Path

from vcpuhp import memmap
from vcpuhp.errors import ConfigError, GuestError

_MEMINFO = Path("/proc/meminfo")


class GuestMemory:
    """``size`` bytes of RAM at guest-physical ``base``, backed by an anonymous mmap."""

    def __init__(self, size: int, base: int = memmap.RAM_BASE) -> None:
        if size <= 0 or size % mmap.PAGESIZE:
            raise ValueError(f"RAM size {size} must be a positive multiple of {mmap.PAGESIZE}")
        self.base = base
        self.size = size
        try:
            self.buffer = mmap.mmap(-1, size)
        except (OSError, OverflowError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(
                f"cannot reserve {format_size(size)} of guest RAM: {reason}; "
                f"{host_memory_summary()}. Use a smaller -m"
            ) from None
        self._anchor = ctypes.c_char.from_buffer(self.buffer)

    @property
    def host_address(self) -> int:
        """Host virtual address of the buffer (for engines that map it directly)."""
        return ctypes.addressof(self._anchor)

    def contains(self, addr: int, length: int = 1) -> bool:
        """Whether ``[addr, addr + length)`` is RAM."""
        return self.base <= addr and addr + length <= self.base + self.size

    def _offset(self, addr: int, length: int) -> int:
        if not self.contains(addr, length):
            raise GuestError(
                f"{length} bytes at {addr:#x} are outside RAM "
                f"{self.base:#x}-{self.base + self.size - 1:#x}"
            )
        return addr - self.base

    def read(self, addr: int, length: int) -> bytes:
        """Bytes at guest-physical ``addr``."""
        offset = self._offset(addr, length)
        return bytes(self.buffer[offset : offset + length])

    def write(self, addr: int, data: bytes) -> None:
        """Store ``data`` at guest-physical ``addr``."""
        offset = self._offset(addr, len(data))
        self.buffer[offset : offset + len(data)] = data

    def read_int(self, addr: int, size: int) -> int:
        """A little-endian integer of ``size`` bytes."""
        return int.from_bytes(self.read(addr, size), "little")

    def write_int(self, addr: int, size: int, value: int) -> None:
        """Store a little-endian integer of ``size`` bytes."""
        self.write(addr, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    def close(self) -> None:
        """Release the buffer."""
        del self._anchor
        self.buffer.close()


def format_size(size: int) -> str:
    """``size`` bytes in the largest binary unit that divides it (``64G``, ``1536M``)."""
    for unit, scale in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size} bytes"


def host_memory_summary() -> str:
    """What the host has, from ``/proc/meminfo`` (Linux), e.g. ``the host has 22G
    available of 23G (no swap)``; a plain phrase where that cannot be read."""
    try:
        fields = dict(
            (line.split(":")[0], int(line.split()[1]) * 1024)
            for line in _MEMINFO.read_text().splitlines() if line.endswith("kB")
        )
        available, total = fields["MemAvailable"], fields["MemTotal"]
    except (OSError, KeyError, ValueError, IndexError):
        return "the host's free memory could not be read"
    swap = fields.get("SwapTotal", 0)
    swap_text = f"{swap >> 30}G swap" if swap else "no swap"
    return f"the host has {available >> 30}G available of {total >> 30}G ({swap_text})"
