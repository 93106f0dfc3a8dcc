"""ACPICA's disassembler and compiler accept every table, for several topologies.

Per table: ``iasl -d`` must exit 0 and report nothing (see
``acpi_testlib.PROBLEM_RE``: errors, warnings, "Incorrect checksum",
"terminates in the middle of a data structure", unknown subtables...), and
the disassembled source must compile back with 0 errors and 0 warnings into
the same bytes. Remarks are allowed (iasl emits some for valid input); the
only expected byte differences are the header's compiler id/revision (iasl
writes its own) and, with an iasl older than ACPI 6.5, the GICC *Online
Capable* flag, which such an iasl does not decode and so drops.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from acpi_testlib import (
    TOPOLOGIES,
    Disassembly,
    compile_asl,
    disassemble,
    make_machine,
    problems,
    requires_iasl,
)

from vcpuhp.acpi import AcpiTables, build_tables
from vcpuhp.machine import VirtMachine

pytestmark = requires_iasl

DISASSEMBLED = ("xsdt", "facp", "dsdt", "apic", "gtdt", "spcr", "pptt")
_HEADER_COMPILER_FIELDS = range(28, 36)
_CHECKSUM = 9


@pytest.fixture(scope="module", params=sorted(TOPOLOGIES))
def dumped(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[VirtMachine, AcpiTables, Path]:
    machine = make_machine(TOPOLOGIES[request.param])
    tables = build_tables(machine.description)
    directory = tmp_path_factory.mktemp(f"acpi-{request.param}")
    tables.dump(directory)
    return machine, tables, directory


@pytest.fixture(scope="module")
def disassembled(dumped: tuple[VirtMachine, AcpiTables, Path]) -> dict[str, Disassembly]:
    _, _, directory = dumped
    return {name: disassemble(directory / f"{name}.dat") for name in DISASSEMBLED}


@pytest.mark.parametrize("name", DISASSEMBLED)
def test_iasl_disassembles_without_complaint(
    name: str, disassembled: dict[str, Disassembly]
) -> None:
    result = disassembled[name]
    assert result.returncode == 0, result.output
    assert problems(result.output) == [], result.output
    assert result.dsl, f"iasl wrote no {name}.dsl"
    assert problems(result.dsl) == []
    if name == "dsdt":
        assert "External (" not in result.dsl  # every referenced name is declared
    else:
        assert f"[{name.upper()}]" in result.output  # decoded as a known data table


def _online_capable_decoded(dsl: str) -> bool:
    return re.search(r"Online Capable\s*:", dsl) is not None


@pytest.mark.parametrize("name", DISASSEMBLED)
def test_disassembly_compiles_back_to_the_same_bytes(
    name: str,
    dumped: tuple[VirtMachine, AcpiTables, Path],
    disassembled: dict[str, Disassembly],
    tmp_path: Path,
) -> None:
    _, tables, _ = dumped
    original = tables.tables[name.upper()]
    compiled = compile_asl(disassembled[name].dsl, tmp_path, name)
    assert (compiled.errors, compiled.warnings) == (0, 0), compiled.output
    ignored = {_CHECKSUM, *_HEADER_COMPILER_FIELDS}
    if name == "apic" and not _online_capable_decoded(disassembled[name].dsl):
        ignored |= _gicc_flag_bytes(original)
    assert len(compiled.aml) == len(original)
    differ = [i for i, (a, b) in enumerate(zip(original, compiled.aml, strict=True)) if a != b]
    assert [i for i in differ if i not in ignored] == []


def _gicc_flag_bytes(madt: bytes) -> set[int]:
    offsets: set[int] = set()
    pos = 44
    while pos < len(madt):
        if madt[pos] == 0x0B:
            offsets.add(pos + 12)  # flags byte 0: Online Capable is bit 3
        pos += madt[pos + 1]
    return offsets


def _subtables(dsl: str) -> list[dict[str, str]]:
    """MADT subtables from the disassembly: ``{field name: value}`` per subtable."""
    out: list[dict[str, str]] = []
    for line in dsl.splitlines():
        match = re.match(r"^(?:\[[^\]]*\])?\s*([^:\[\]]+?)\s+:\s+(\S+)", line)
        if not match:
            continue
        key, value = match.group(1).strip(), match.group(2)
        if key == "Subtable Type":
            out.append({})
        if out:
            out[-1][key] = value
    return out


def test_disassembled_madt_shows_flags_and_mpidrs(
    dumped: tuple[VirtMachine, AcpiTables, Path], disassembled: dict[str, Disassembly]
) -> None:
    machine, _, _ = dumped
    dsl = disassembled["apic"].dsl
    assert re.search(r"Revision : 05", dsl)
    subtables = _subtables(dsl)
    giccs = [s for s in subtables if s["Subtable Type"] == "0B"]
    assert len(giccs) == len(machine.topology.slots)
    for gicc, slot in zip(giccs, machine.topology.slots, strict=True):
        cold = machine.topology.is_cold_booted(slot)
        assert int(gicc["Processor UID"], 16) == slot.index
        assert int(gicc["CPU Interface Number"], 16) == slot.index
        assert int(gicc["ARM MPIDR"], 16) == slot.arch_id
        assert int(gicc["Flags (decoded below)"], 16) == (0x1 if cold else 0x8)
        assert gicc["Processor Enabled"] == ("1" if cold else "0")
        if "Online Capable" in gicc:  # iasl >= ACPI 6.5 decodes the bit
            assert gicc["Online Capable"] == ("0" if cold else "1")
        assert int(gicc["Redistributor Base Address"], 16) == 0
        assert int(gicc["Performance Interrupt"], 16) == 23
        assert int(gicc["Virtual GIC Interrupt"], 16) == 25
    gicds = [s for s in subtables if s["Subtable Type"] == "0C"]
    assert [(int(g["Base Address"], 16), g["Version"]) for g in gicds] == [(0x0800_0000, "03")]
    gicrs = [s for s in subtables if s["Subtable Type"] == "0E"]
    assert [(int(g["Base Address"], 16), int(g["Length"], 16)) for g in gicrs] == [
        (r.base, r.count * 0x2_0000) for r in machine.gic.regions
    ]


def test_rsdp_matches_what_iasl_compiles_from_its_fields(
    dumped: tuple[VirtMachine, AcpiTables, Path], tmp_path: Path
) -> None:
    """iasl cannot disassemble a raw RSDP before ACPICA 2021, so compile its fields instead.

    The data table compiler computes both checksums and the length itself.
    """
    _, tables, _ = dumped
    rsdp = tables.tables["RSDP"]
    source = "\n".join([
        '[0008]                          Signature : "RSD PTR "',
        "[0001]                           Checksum : 00",
        '[0006]                             Oem ID : "VCPUHP"',
        "[0001]                           Revision : 02",
        "[0004]                       RSDT Address : 00000000",
        "[0004]                             Length : 00000024",
        f"[0008]                       XSDT Address : {tables.addresses['XSDT']:016X}",
        "[0001]                  Extended Checksum : 00",
        "[0003]                           Reserved : 000000",
        "",
    ])
    compiled = compile_asl(source, tmp_path, "rsdp")
    assert (compiled.errors, compiled.warnings) == (0, 0), compiled.output
    assert compiled.aml == rsdp


def test_iasl_reports_a_broken_table(tmp_path: Path) -> None:
    """The checks above would notice: a bad checksum is reported."""
    table = bytearray(build_tables(make_machine("2").description).tables["APIC"])
    table[9] ^= 0xFF
    (tmp_path / "apic.dat").write_bytes(table)
    result = disassemble(tmp_path / "apic.dat")
    assert problems(result.output + result.dsl)
