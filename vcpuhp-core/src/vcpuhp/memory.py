"""Guest RAM: one host buffer that every backend maps."""

from __future__ import annotations

import ctypes
import mmap

from vcpuhp import memmap
from vcpuhp.errors import GuestError


class GuestMemory:
    """``size`` bytes of RAM at guest-physical ``base``, backed by an anonymous mmap."""

    def __init__(self, size: int, base: int = memmap.RAM_BASE) -> None:
        if size <= 0 or size % mmap.PAGESIZE:
            raise ValueError(f"RAM size {size} must be a positive multiple of {mmap.PAGESIZE}")
        self.base = base
        self.size = size
        self.buffer = mmap.mmap(-1, size)
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
