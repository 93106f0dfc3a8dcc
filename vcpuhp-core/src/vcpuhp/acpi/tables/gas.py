"""The Generic Address Structure (ACPI 6.5 section 5.2.3.2)."""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Final

GAS_SIZE: Final = 12


class AccessSize(IntEnum):
    """GAS access size."""

    UNDEFINED = 0
    BYTE = 1
    WORD = 2
    DWORD = 3
    QWORD = 4


def gas(
    address: int = 0,
    *,
    space: int = 0,
    bit_width: int = 0,
    bit_offset: int = 0,
    access: AccessSize = AccessSize.UNDEFINED,
) -> bytes:
    """A 12-byte GAS; the defaults give the all-zero "not present" GAS."""
    return struct.pack("<BBBBQ", space, bit_width, bit_offset, access, address)
