"""SMBIOS 3.0 tables: the entry point and structures, byte for byte, and as dmidecode reads
them (dmidecode is what Linux's DMI decoding is modelled on)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from boot_testlib import MakeImage

from vcpuhp import MachineConfig, __version__, memmap
from vcpuhp.acpi import build_tables
from vcpuhp.boot import efi, smbios
from vcpuhp.boot.arm64_image import parse_kernel
from vcpuhp.boot.linux import plan_linux_boot
from vcpuhp.description import MachineDescription


def structures(table: bytes) -> list[tuple[int, int, int, bytes, list[bytes]]]:
    """(type, length, handle, formatted area, strings) of each structure, checking the framing."""
    found = []
    offset = 0
    while offset < len(table):
        kind, length, handle = struct.unpack_from("<BBH", table, offset)
        formatted = table[offset + 4: offset + length]
        end = table.index(b"\0\0", offset + length)
        text = table[offset + length: end]
        strings = text.split(b"\0") if text else []
        found.append((kind, length, handle, formatted, strings))
        offset = end + 2
    assert offset == len(table), "the table ends exactly after End of Table"
    return found


def test_the_entry_point_is_the_24_byte_smbios3_form_with_a_zero_checksum() -> None:
    entry = smbios.entry_point(0x4010_0400, 0x123)
    assert len(entry) == 24 and entry[:5] == b"_SM3_"
    assert sum(entry) & 0xFF == 0
    length, major, minor, docrev, revision, reserved, size, address = struct.unpack_from(
        "<BBBBBBIQ", entry, 6)
    assert (length, major, minor, docrev, revision, reserved) == (24, 3, 0, 0, 1, 0)
    assert (size, address) == (0x123, 0x4010_0400)


def test_the_structures_are_bios_system_chassis_and_end_with_their_spec_lengths() -> None:
    found = structures(smbios.structure_table("9.8.7"))
    assert [(kind, length, handle) for kind, length, handle, _, _ in found] == [
        (0, 0x18, 0), (1, 0x1B, 1), (3, 0x15, 2), (127, 4, 3)]
    bios, system, chassis, _end = found
    assert bios[4] == [b"vcpuhp", b"9.8.7"]
    assert bios[3][0:2] == b"\x01\x02" and bios[3][2:4] == b"\0\0", "no legacy BIOS segment"
    characteristics, ext1, ext2 = struct.unpack_from("<QBB", bios[3], 6)
    assert (characteristics, ext1, ext2) == (1 << 3, 0, (1 << 3) | (1 << 4))
    assert system[4] == [b"vcpuhp", b"virt", b"9.8.7", b"virt"]
    assert system[3][4:20] == bytes(16), "UUID not present"
    assert chassis[4] == [b"vcpuhp"] and chassis[3][1] == 0x01


@pytest.mark.requires_tool("dmidecode", "dmidecode")
def test_dmidecode_decodes_the_tables_without_complaint(tmp_path: Path) -> None:
    table = smbios.structure_table()
    dump = tmp_path / "smbios.bin"
    # dmidecode's own dump format: the entry point at 0 naming the table at 0x20
    dump.write_bytes(smbios.entry_point(0x20, len(table)).ljust(0x20, b"\0") + table)
    dmidecode = shutil.which("dmidecode")
    assert dmidecode is not None
    done = subprocess.run([dmidecode, "--from-dump", str(dump)], capture_output=True,
                          text=True, check=True, timeout=30)
    out = done.stdout
    assert done.stderr == ""
    assert "SMBIOS 3.0.0 present." in out
    for line in ("BIOS Information", "\tVendor: vcpuhp", f"\tVersion: {__version__}",
                 "\t\tUEFI is supported", "\t\tSystem is a virtual machine",
                 "System Information", "\tManufacturer: vcpuhp", "\tProduct Name: virt",
                 "\tFamily: virt", "Chassis Information", "\tType: Other", "End Of Table"):
        assert line in out.splitlines(), out
    assert "Invalid" not in out and "Bad" not in out and "truncated" not in out


def test_the_linux_boot_names_smbios_in_the_efi_configuration_table(
    make_image: MakeImage,
) -> None:
    description = MachineDescription.of(MachineConfig.build("cpus=2,maxcpus=4"))
    tables = build_tables(description)
    plan = plan_linux_boot(description, parse_kernel(make_image(), "Image"), "", tables)
    memory = dict(plan.segments)
    efi_area = memmap.RAM_BASE + 0x10_0000
    system_table = memory[efi_area]
    count, config = struct.unpack_from("<QQ", system_table, 104)
    assert count == 2
    entries = memory[config]
    assert entries[:24] == efi.configuration_table(tables.addresses["RSDP"])
    guid, entry_address = struct.unpack_from("<16sQ", entries, 24)
    assert guid == smbios.SMBIOS3_TABLE_GUID.bytes_le
    entry = memory[entry_address]
    size, table_address = struct.unpack_from("<IQ", entry, 12)
    assert memory[table_address] == smbios.structure_table() and size == len(memory[
        table_address])
    runtime = [d for d in plan.memory_map if d.kind is efi.MemoryType.RUNTIME_SERVICES_DATA]
    assert len(runtime) == 1
    for address in (entry_address, table_address):
        assert runtime[0].start <= address < runtime[0].end, "reserved from the OS"
