"""The common System Description Table header (ACPI 6.5 section 5.2.6) and checksums."""

from __future__ import annotations

import struct
from typing import Final

OEM_ID: Final = b"VCPUHP"
OEM_TABLE_ID: Final = b"VCPUHPVM"
OEM_REVISION: Final = 1
CREATOR_ID: Final = b"VCHP"
CREATOR_REVISION: Final = 1
HEADER_SIZE: Final = 36
CHECKSUM_OFFSET: Final = 9


def checksum(data: bytes | bytearray) -> int:
    """The byte that makes ``data`` plus it sum to zero modulo 256."""
    return -sum(data) & 0xFF


def sdt(signature: bytes, revision: int, body: bytes) -> bytes:
    """A complete table: the 36-byte header (with length and checksum) followed by ``body``."""
    if len(signature) != 4:
        raise ValueError(f"table signature {signature!r} must be 4 bytes")
    header = struct.pack(
        "<4sIBB6s8sI4sI",
        signature, HEADER_SIZE + len(body), revision, 0,
        OEM_ID, OEM_TABLE_ID, OEM_REVISION, CREATOR_ID, CREATOR_REVISION,
    )
    table = bytearray(header + body)
    table[CHECKSUM_OFFSET] = checksum(table)
    return bytes(table)
