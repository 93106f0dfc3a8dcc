"""The static EFI environment: system table, configuration table, memory map."""

from __future__ import annotations

import struct
import zlib

import pytest

from vcpuhp.boot import efi


def test_the_system_table_header_and_crc() -> None:
    table = efi.system_table(vendor_address=0x4010_0100, tables_address=0x4010_0200,
                             table_count=1)
    assert len(table) == 120
    signature, revision, header_size, crc, reserved = struct.unpack_from("<QIIII", table)
    assert signature.to_bytes(8, "little") == b"IBI SYST"
    assert (revision, header_size, reserved) == ((2 << 16) | 70, 120, 0)
    assert crc == zlib.crc32(table[:16] + b"\0\0\0\0" + table[20:])
    vendor, = struct.unpack_from("<Q", table, 24)
    runtime, boot, count, config = struct.unpack_from("<QQQQ", table, 88)
    assert (vendor, runtime, boot, count, config) == (0x4010_0100, 0, 0, 1, 0x4010_0200)


def test_the_configuration_table_names_acpi_20_in_efi_guid_byte_order() -> None:
    entry = efi.configuration_table(0x4000_0000)
    assert entry[:16] == bytes.fromhex("71e86888f1e4d311bc220080c73c8881")
    assert struct.unpack_from("<Q", entry, 16) == (0x4000_0000,)


def test_memory_descriptors_are_48_bytes_sorted_and_checked() -> None:
    conventional = efi.MemoryDescriptor(efi.MemoryType.CONVENTIONAL, 0x4020_0000, 16,
                                        efi.RAM_ATTRIBUTES)
    acpi = efi.MemoryDescriptor(efi.MemoryType.ACPI_RECLAIM, 0x4000_0000, 2, efi.RAM_ATTRIBUTES)
    blob = efi.memory_map([conventional, acpi])
    assert len(blob) == 2 * 48
    assert struct.unpack_from("<IIQQQQ", blob, 0) == (9, 0, 0x4000_0000, 0, 2, 0xF)
    assert struct.unpack_from("<IIQQQQ", blob, 48) == (7, 0, 0x4020_0000, 0, 16, 0xF)
    with pytest.raises(ValueError, match="overlap"):
        efi.memory_map([acpi, efi.MemoryDescriptor(efi.MemoryType.CONVENTIONAL, 0x4000_1000, 1,
                                                   efi.RAM_ATTRIBUTES)])
    with pytest.raises(ValueError, match="whole pages"):
        efi.memory_map([efi.MemoryDescriptor(efi.MemoryType.CONVENTIONAL, 0x4000_0800, 1, 0)])


def test_the_vendor_string_is_nul_terminated_ucs2() -> None:
    assert efi.firmware_vendor("vcpuhp") == "vcpuhp".encode("utf-16-le") + b"\0\0"
