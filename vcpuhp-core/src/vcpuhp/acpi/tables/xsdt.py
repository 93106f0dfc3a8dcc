"""The Extended System Description Table (ACPI 6.5 section 5.2.8)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from vcpuhp.acpi.tables.sdt import HEADER_SIZE, sdt

XSDT_REVISION: Final = 1


def xsdt_size(entries: int) -> int:
    """Length of an XSDT with ``entries`` table pointers."""
    return HEADER_SIZE + 8 * entries


def build_xsdt(addresses: Sequence[int]) -> bytes:
    """An XSDT listing the tables at ``addresses`` (64-bit physical addresses)."""
    return sdt(b"XSDT", XSDT_REVISION, b"".join(struct.pack("<Q", a) for a in addresses))
