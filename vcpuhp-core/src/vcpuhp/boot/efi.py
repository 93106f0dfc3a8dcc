"""The minimal, static EFI environment Linux needs to take ACPI on arm64 without firmware.

arm64 Linux reads ACPI only through an EFI system table, and its memory only
from the EFI memory map once a system table is given. Neither needs UEFI
code: the VMM writes a system table whose one configuration table entry is
the ACPI 2.0 GUID -> RSDP (and SMBIOS 3.0, :mod:`vcpuhp.boot.smbios`), and a
memory map, and points ``/chosen`` at both
(see :mod:`vcpuhp.boot.devicetree`). Boot and runtime services are absent
(pointers 0), so the kernel runs with ``efi=noruntime``.

Layouts are the UEFI specification's (2.10, §4.2 EFI_TABLE_HEADER, §4.3
EFI_SYSTEM_TABLE, §4.6 EFI_CONFIGURATION_TABLE, §7.2 EFI_MEMORY_DESCRIPTOR)
for a 64-bit machine.
"""

from __future__ import annotations

import itertools
import struct
import uuid
import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

SYSTEM_TABLE_SIGNATURE: Final = 0x5453_5953_2049_4249
"""``"IBI SYST"``."""
SYSTEM_TABLE_REVISION: Final = (2 << 16) | 70
"""EFI 2.70, what current firmware (EDK2) reports."""
SYSTEM_TABLE: Final = struct.Struct("<QIIII QI4x QQQQQQ QQ QQ")
"""Header (signature, revision, header size, CRC32, reserved), firmware vendor
pointer, firmware revision, console in/out/err handles and protocols, runtime
services, boot services, number of configuration tables, their address."""
SYSTEM_TABLE_SIZE: Final = SYSTEM_TABLE.size
CONFIGURATION_TABLE: Final = struct.Struct("<16sQ")
ACPI_20_TABLE_GUID: Final = uuid.UUID("8868e871-e4f1-11d3-bc22-0080c73c8881")
MEMORY_DESCRIPTOR: Final = struct.Struct("<IIQQQQ")
MEMORY_DESCRIPTOR_SIZE: Final = 48
"""The descriptor stride given to the kernel: 40 bytes of fields, padded as EDK2 pads."""
MEMORY_DESCRIPTOR_VERSION: Final = 1
EFI_PAGE_SIZE: Final = 4096

ATTRIBUTE_UC: Final = 1 << 0
ATTRIBUTE_WC: Final = 1 << 1
ATTRIBUTE_WT: Final = 1 << 2
ATTRIBUTE_WB: Final = 1 << 3
ATTRIBUTE_RUNTIME: Final = 1 << 63
RAM_ATTRIBUTES: Final = ATTRIBUTE_UC | ATTRIBUTE_WC | ATTRIBUTE_WT | ATTRIBUTE_WB


class MemoryType(IntEnum):
    """``EFI_MEMORY_TYPE`` values the machine uses."""

    RUNTIME_SERVICES_DATA = 6
    CONVENTIONAL = 7
    ACPI_RECLAIM = 9


@dataclass(frozen=True)
class MemoryDescriptor:
    """One EFI memory map entry: ``pages`` 4 KiB pages of ``kind`` at ``start``."""

    kind: MemoryType
    start: int
    pages: int
    attributes: int

    @property
    def end(self) -> int:
        """One past the last byte."""
        return self.start + self.pages * EFI_PAGE_SIZE

    def to_bytes(self) -> bytes:
        """The descriptor padded to :data:`MEMORY_DESCRIPTOR_SIZE`."""
        packed = MEMORY_DESCRIPTOR.pack(int(self.kind), 0, self.start, 0, self.pages,
                                        self.attributes)
        return packed.ljust(MEMORY_DESCRIPTOR_SIZE, b"\0")


def memory_map(descriptors: list[MemoryDescriptor]) -> bytes:
    """The memory map: descriptors sorted by address; they must be page aligned and disjoint."""
    ordered = sorted(descriptors, key=lambda d: d.start)
    for first, second in itertools.pairwise(ordered):
        if first.end > second.start:
            raise ValueError(f"EFI memory map entries overlap at {second.start:#x}")
    for entry in ordered:
        if entry.start % EFI_PAGE_SIZE or entry.pages <= 0:
            raise ValueError(f"EFI memory map entry at {entry.start:#x} is not whole pages")
    return b"".join(entry.to_bytes() for entry in ordered)


def configuration_entry(guid: uuid.UUID, address: int) -> bytes:
    """One ``EFI_CONFIGURATION_TABLE`` entry: a vendor GUID (in EFI's mixed-endian byte
    order) and the table's address."""
    return CONFIGURATION_TABLE.pack(guid.bytes_le, address)


def configuration_table(rsdp_address: int) -> bytes:
    """The ACPI 2.0 entry: :data:`ACPI_20_TABLE_GUID` and the RSDP's address."""
    return configuration_entry(ACPI_20_TABLE_GUID, rsdp_address)


def firmware_vendor(name: str) -> bytes:
    """A NUL-terminated UCS-2 string, as ``FirmwareVendor`` points at."""
    return name.encode("utf-16-le") + b"\0\0"


def system_table(*, vendor_address: int, tables_address: int, table_count: int) -> bytes:
    """``EFI_SYSTEM_TABLE`` with no boot or runtime services and a valid header CRC32."""

    def pack(crc: int) -> bytes:
        return SYSTEM_TABLE.pack(
            SYSTEM_TABLE_SIGNATURE, SYSTEM_TABLE_REVISION, SYSTEM_TABLE_SIZE, crc, 0,
            vendor_address, 0,
            0, 0, 0, 0, 0, 0,
            0, 0,
            table_count, tables_address,
        )

    return pack(zlib.crc32(pack(0)))


__all__ = [
    "ACPI_20_TABLE_GUID",
    "MEMORY_DESCRIPTOR_SIZE",
    "MEMORY_DESCRIPTOR_VERSION",
    "RAM_ATTRIBUTES",
    "MemoryDescriptor",
    "MemoryType",
    "configuration_entry",
    "configuration_table",
    "firmware_vendor",
    "memory_map",
    "system_table",
]
