"""The Root System Description Pointer, revision 2 (ACPI 6.5 section 5.2.5.3)."""

from __future__ import annotations

import struct
from typing import Final

from vcpuhp.acpi.tables.sdt import OEM_ID, checksum

RSDP_SIZE: Final = 36
RSDP_REVISION: Final = 2
RSDP_ALIGNMENT: Final = 16


def build_rsdp(xsdt_address: int) -> bytes:
    """An RSDP pointing at the XSDT only (no RSDT), with both checksums set.

    The first checksum covers bytes 0-19 (the ACPI 1.0 part), the extended
    one all 36 bytes.
    """
    data = bytearray(
        struct.pack(
            "<8sB6sBIIQB3s",
            b"RSD PTR ", 0, OEM_ID, RSDP_REVISION, 0, RSDP_SIZE, xsdt_address, 0, b"\0\0\0",
        )
    )
    data[8] = checksum(data[:20])
    data[32] = checksum(data)
    return bytes(data)
