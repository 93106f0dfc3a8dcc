"""SMBIOS 3.0 tables for the direct Linux boot: who made the machine and its firmware.

UEFI firmware (EDK2 on QEMU's ``virt``) hands the OS SMBIOS tables through the
EFI configuration table (``SMBIOS3_TABLE_GUID``); without them Linux logs
"DMI not present or invalid." and names no hardware in its reports. This is
the smallest set that identifies the machine (DMTF DSP0134 3.0):

* type 0, BIOS Information: vendor and version (the firmware is vcpuhp itself),
  UEFI supported, a virtual machine;
* type 1, System Information: manufacturer, product, version, family;
* type 3, System Enclosure: the chassis;
* type 127, End of Table.

Linux reports it as ``DMI: vcpuhp virt/virt, BIOS <version>``. The 64-bit entry
point (``_SM3_``, 24 bytes) carries the table's maximum size and address.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from typing import Final

from vcpuhp import __version__

SMBIOS3_TABLE_GUID: Final = uuid.UUID("f2fd1544-9794-4a2c-992e-e5bbcf20e394")
ENTRY_POINT_SIZE: Final = 24
SMBIOS_VERSION: Final = (3, 0, 0)
"""Major, minor, docrev: the structures below are the 3.0 forms."""
MANUFACTURER: Final = "vcpuhp"
PRODUCT: Final = "virt"
TYPE_BIOS, TYPE_SYSTEM, TYPE_CHASSIS, TYPE_END = 0, 1, 3, 127
BIOS_CHARACTERISTICS_NOT_SUPPORTED: Final = 1 << 3
BIOS_EXT2_UEFI: Final = 1 << 3
BIOS_EXT2_VIRTUAL_MACHINE: Final = 1 << 4
WAKEUP_POWER_SWITCH: Final = 0x06
CHASSIS_OTHER: Final = 0x01
STATE_SAFE: Final = 0x03
SECURITY_UNKNOWN: Final = 0x02
NOT_AVAILABLE: Final = 0xFF


def _structure(kind: int, handle: int, formatted: bytes, strings: Sequence[str]) -> bytes:
    """One structure: its 4-byte header, the formatted area, then its string set."""
    header = struct.pack("<BBH", kind, 4 + len(formatted), handle)
    if not strings:
        return header + formatted + b"\0\0"
    text = b"".join(s.encode("ascii") + b"\0" for s in strings)
    return header + formatted + text + b"\0"


def structure_table(version: str = __version__) -> bytes:
    """The structures, types 0, 1, 3 and 127, handles 0-3."""
    bios = struct.pack(
        "<BBHBBQBBBBBB",
        1, 2, 0x0000,           # vendor, version; no legacy BIOS segment (UEFI)
        0, 0,                   # release date: none; ROM size: 64 KiB (none really)
        BIOS_CHARACTERISTICS_NOT_SUPPORTED,
        0, BIOS_EXT2_UEFI | BIOS_EXT2_VIRTUAL_MACHINE,
        NOT_AVAILABLE, NOT_AVAILABLE, NOT_AVAILABLE, NOT_AVAILABLE,  # BIOS and EC releases
    )
    system = struct.pack(
        "<BBBB16sBBB",
        1, 2, 3, 0,             # manufacturer, product, version; serial: none
        bytes(16),              # UUID: not present
        WAKEUP_POWER_SWITCH,
        0, 4,                   # SKU: none; family
    )
    chassis = struct.pack(
        "<BBBBBBBBBIBBBB",
        1, CHASSIS_OTHER, 0, 0, 0,   # manufacturer, type, version, serial, asset tag
        STATE_SAFE, STATE_SAFE, STATE_SAFE, SECURITY_UNKNOWN,
        0, 0, 0, 0, 0,               # OEM, height, power cords, no contained elements
    )
    return b"".join([
        _structure(TYPE_BIOS, 0, bios, [MANUFACTURER, version]),
        _structure(TYPE_SYSTEM, 1, system, [MANUFACTURER, PRODUCT, version, PRODUCT]),
        _structure(TYPE_CHASSIS, 2, chassis, [MANUFACTURER]),
        _structure(TYPE_END, 3, b"", []),
    ])


def entry_point(table_address: int, table_size: int) -> bytes:
    """The SMBIOS 3.0 64-bit entry point for a structure table at ``table_address``."""
    major, minor, docrev = SMBIOS_VERSION

    def pack(checksum: int) -> bytes:
        return struct.pack("<5sBBBBBBBIQ", b"_SM3_", checksum, ENTRY_POINT_SIZE, major, minor,
                           docrev, 1, 0, table_size, table_address)

    return pack(-sum(pack(0)) & 0xFF)


__all__ = ["ENTRY_POINT_SIZE", "MANUFACTURER", "PRODUCT", "SMBIOS3_TABLE_GUID", "entry_point",
           "structure_table"]
