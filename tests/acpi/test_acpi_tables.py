"""The table set: headers, pointers, layout in RAM, and what each table says."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from acpi_testlib import (
    TOPOLOGIES,
    aml_namespace,
    decode_madt,
    decode_pptt,
    eisa_text,
    make_machine,
)

from vcpuhp import memmap
from vcpuhp.acpi import AcpiTables, build_tables
from vcpuhp.acpi.aml import eisa_id
from vcpuhp.acpi.tables import sdt
from vcpuhp.errors import ConfigError
from vcpuhp.memory import GuestMemory

REVISIONS = {"XSDT": 1, "FACP": 6, "DSDT": 2, "APIC": 5, "GTDT": 3, "SPCR": 2, "PPTT": 2}


@pytest.fixture(params=sorted(TOPOLOGIES), scope="module")
def tables(request: pytest.FixtureRequest) -> AcpiTables:
    return build_tables(make_machine(TOPOLOGIES[request.param]).description)


@pytest.fixture
def memory() -> Iterator[GuestMemory]:
    ram = GuestMemory(16 * memmap.MiB)
    yield ram
    ram.close()


def _u(data: bytes, offset: int, size: int) -> int:
    return int.from_bytes(data[offset : offset + size], "little")


def test_every_table_has_a_valid_header(tables: AcpiTables) -> None:
    assert set(tables.tables) == {"RSDP", *REVISIONS}
    for signature, revision in REVISIONS.items():
        table = tables.tables[signature]
        assert table[:4] == signature.encode()
        assert _u(table, 4, 4) == len(table)
        assert table[8] == revision, signature
        assert sum(table) % 256 == 0, f"{signature} checksum"
        assert table[10:16] == b"VCPUHP"
        assert table[16:24] == b"VCPUHPVM"


def test_rsdp_has_both_checksums_and_points_at_the_xsdt(tables: AcpiTables) -> None:
    rsdp = tables.tables["RSDP"]
    assert len(rsdp) == 36
    assert rsdp[:8] == b"RSD PTR "
    assert rsdp[15] == 2
    assert sum(rsdp[:20]) % 256 == 0
    assert sum(rsdp) % 256 == 0
    assert rsdp[9:15] == b"VCPUHP"
    assert _u(rsdp, 16, 4) == 0  # no RSDT
    assert _u(rsdp, 20, 4) == 36
    assert _u(rsdp, 24, 8) == tables.addresses["XSDT"]


def test_xsdt_lists_the_tables_and_the_fadt_the_dsdt(tables: AcpiTables) -> None:
    xsdt = tables.tables["XSDT"]
    pointers = struct.unpack_from(f"<{(len(xsdt) - 36) // 8}Q", xsdt, 36)
    assert pointers == tuple(tables.addresses[s] for s in ("FACP", "APIC", "GTDT", "SPCR", "PPTT"))
    fadt = tables.tables["FACP"]
    assert len(fadt) == 276
    assert _u(fadt, 140, 8) == tables.addresses["DSDT"]  # X_DSDT
    assert _u(fadt, 40, 4) == 0  # 32-bit DSDT unused
    assert _u(fadt, 112, 4) == 1 << 20  # HW_REDUCED_ACPI
    assert _u(fadt, 129, 2) == 0b11  # PSCI compliant, PSCI uses HVC
    assert fadt[131] == 3  # FADT minor version: ACPI 6.3


def test_place_writes_every_table_where_the_pointers_say(
    tables: AcpiTables, memory: GuestMemory
) -> None:
    rsdp = tables.place(memory, memmap.ACPI_TABLES_ADDR)
    assert rsdp == memmap.ACPI_TABLES_ADDR
    assert tables.size <= memmap.ACPI_TABLES_MAX
    xsdt = memory.read_int(rsdp + 24, 8)
    assert memory.read(xsdt, 4) == b"XSDT"
    count = (memory.read_int(xsdt + 4, 4) - 36) // 8
    found = {}
    for n in range(count):
        address = memory.read_int(xsdt + 36 + 8 * n, 8)
        assert address % 16 == 0
        signature = memory.read(address, 4).decode()
        found[signature] = memory.read(address, memory.read_int(address + 4, 4))
    dsdt = memory.read_int(tables.addresses["FACP"] + 140, 8)
    found["DSDT"] = memory.read(dsdt, memory.read_int(dsdt + 4, 4))
    found["XSDT"] = memory.read(xsdt, memory.read_int(xsdt + 4, 4))
    found["RSDP"] = memory.read(rsdp, 36)
    assert found == tables.tables


def test_place_at_another_base_rebuilds_the_pointers(memory: GuestMemory) -> None:
    tables = build_tables(make_machine("cpus=2,maxcpus=4").description)
    before = dict(tables.tables)
    base = memmap.RAM_BASE + 0x40_0000
    rsdp = tables.place(memory, base)
    assert rsdp == base
    assert _u(tables.tables["RSDP"], 24, 8) == tables.addresses["XSDT"] > base
    assert tables.tables["XSDT"] != before["XSDT"]
    assert tables.tables["FACP"] != before["FACP"]
    for name in ("DSDT", "APIC", "GTDT", "SPCR", "PPTT"):
        assert tables.tables[name] == before[name]
        assert memory.read(tables.addresses[name], len(before[name])) == before[name]


def test_place_refuses_bad_bases(memory: GuestMemory) -> None:
    tables = build_tables(make_machine("2").description)
    with pytest.raises(ConfigError, match="16-byte aligned"):
        tables.place(memory, memmap.RAM_BASE + 8)
    with pytest.raises(ConfigError, match="do not fit in guest RAM"):
        tables.place(memory, memmap.RAM_BASE + memory.size - 64)


def test_place_lays_out_tables_a_hook_replaced_or_added(memory: GuestMemory) -> None:
    tables = build_tables(make_machine("cpus=1,maxcpus=2").description)
    ssdt = sdt(b"SSDT", 2, b"\x08X___\x0a\x05")
    tables.tables["SSDT"] = ssdt
    tables.tables["SPCR"] = sdt(b"SPCR", 2, bytes(44))
    tables.place(memory, memmap.ACPI_TABLES_ADDR)
    assert list(tables.tables)[:4] == ["RSDP", "XSDT", "FACP", "DSDT"]
    xsdt = tables.tables["XSDT"]
    listed = struct.unpack_from(f"<{(len(xsdt) - 36) // 8}Q", xsdt, 36)
    assert listed == tuple(
        tables.addresses[s] for s in ("FACP", "APIC", "GTDT", "SPCR", "PPTT", "SSDT")
    )
    assert memory.read(tables.addresses["SSDT"], len(ssdt)) == ssdt
    assert memory.read(tables.addresses["SPCR"], 80) == tables.tables["SPCR"]


def test_layout_refuses_an_incomplete_or_oversized_set() -> None:
    with pytest.raises(ConfigError, match="needs a DSDT"):
        AcpiTables({"APIC": sdt(b"APIC", 5, bytes(8))})
    with pytest.raises(ConfigError, match="at most"):
        AcpiTables({"DSDT": sdt(b"DSDT", 2, bytes(memmap.ACPI_TABLES_MAX))})


def test_dump_names_files_as_acpidump_does(tmp_path: Path) -> None:
    tables = build_tables(make_machine("cpus=1,maxcpus=2").description)
    written = tables.dump(tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(
        ["rsdp.dat", "xsdt.dat", "facp.dat", "dsdt.dat", "apic.dat", "gtdt.dat", "spcr.dat",
         "pptt.dat"]
    )
    for path in written:
        assert path.read_bytes() == tables.tables[path.stem.upper()]


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_madt_describes_every_possible_cpu_and_redistributor_region(name: str) -> None:
    machine = make_machine(TOPOLOGIES[name])
    madt = decode_madt(build_tables(machine.description).tables["APIC"])
    slots = machine.topology.slots
    assert len(madt.giccs) == len(slots)
    for gicc, slot in zip(madt.giccs, slots, strict=True):
        assert gicc.length == 80
        assert gicc.interface == gicc.uid == slot.index
        assert gicc.mpidr == slot.arch_id
        expected = 0b0001 if machine.topology.is_cold_booted(slot) else 0b1000
        assert gicc.flags == expected
        assert (gicc.perf_gsiv, gicc.vgic_gsiv, gicc.gicr_base) == (23, 25, 0)
    assert madt.gicds == [(0x0800_0000, 3)]
    assert madt.gicrs == [(r.base, r.count * 0x2_0000) for r in machine.gic.regions]
    assert len(madt.gicrs) == (2 if len(slots) > 123 else 1)


def test_gtdt_lists_the_timer_ppis_level_triggered_active_high() -> None:
    gtdt = build_tables(make_machine("1").description).tables["GTDT"]
    assert _u(gtdt, 36, 8) == _u(gtdt, 80, 8) == 0xFFFF_FFFF_FFFF_FFFF
    timers = struct.unpack_from("<8I", gtdt, 48)
    assert timers == (29, 0, 30, 0b100, 27, 0b100, 26, 0b100)
    assert struct.unpack_from("<II", gtdt, 88) == (0, 0)  # no platform timers


def test_spcr_names_the_pl011() -> None:
    spcr = build_tables(make_machine("1").description).tables["SPCR"]
    assert spcr[36] == 3  # ARM PL011
    assert spcr[40:44] == bytes([0, 32, 0, 3])  # system memory, 32 bits, dword access
    assert _u(spcr, 44, 8) == 0x0900_0000
    assert spcr[52] == 0b1000  # ARM GIC interrupt
    assert _u(spcr, 54, 4) == 33


def test_pptt_mirrors_the_topology_levels() -> None:
    machine = make_machine("cpus=3,maxcpus=16,sockets=2,clusters=2,cores=2,threads=2")
    nodes = decode_pptt(build_tables(machine.description).tables["PPTT"])
    leaves = {n.acpi_id: n for n in nodes.values() if n.flags & 0b1000}
    assert sorted(leaves) == list(range(16))
    for slot in machine.topology.slots:
        leaf = leaves[slot.index]
        assert leaf.flags == 0b1110  # ID valid, thread, leaf
        core = nodes[leaf.parent]
        cluster = nodes[core.parent]
        socket = nodes[cluster.parent]
        assert (core.flags, core.acpi_id) == (0b0010, slot.core_id)
        assert (cluster.flags, cluster.acpi_id) == (0b0010, slot.cluster_id)
        assert (socket.flags, socket.acpi_id, socket.parent) == (0b0011, slot.socket_id, 0)
    assert len(nodes) == 2 + 4 + 8 + 16


def test_pptt_without_threads_or_clusters_has_cores_as_leaves() -> None:
    nodes = decode_pptt(build_tables(make_machine("cpus=1,maxcpus=4").description).tables["PPTT"])
    socket, *cores = nodes.values()
    assert (socket.flags, socket.parent) == (0b0011, 0)
    assert [(c.flags, c.parent, c.acpi_id) for c in cores] == [
        (0b1010, socket.offset, n) for n in range(4)
    ]


def test_dsdt_declares_the_devices() -> None:
    description = make_machine("cpus=2,maxcpus=4").description
    namespace = aml_namespace(build_tables(description).tables["DSDT"])
    assert namespace["\\_SB.COM0._HID"] == "ARMH0011"
    assert namespace["\\_SB.GED._HID"] == "ACPI0013"
    assert namespace["\\_SB.GED._EVT"] == ("method", 1)
    assert namespace["\\_SB.PWRB._HID"] == "PNP0C0C"
    assert namespace["\\_SB.PRES._HID"] == eisa_id("PNP0A06")
    assert eisa_text(eisa_id("PNP0A06")) == "PNP0A06"
    assert namespace["\\_SB.PRES._UID"] == "CPU Hotplug resources"
    assert namespace["\\_SB.PRES.CPLK"] == "mutex"
    assert namespace["\\_SB.PRES.PRST"] == "region"
    assert namespace["\\_SB.CPUS._HID"] == "ACPI0010"
    assert namespace["\\_SB.CPUS._CID"] == eisa_id("PNP0A05")
    methods = {"CTFY": 2, "CSTA": 1, "CEJ0": 1, "CSCN": 0, "COST": 3}
    for method, args in methods.items():
        assert namespace[f"\\_SB.CPUS.{method}"] == ("method", args)
    for index in range(4):
        device = f"\\_SB.CPUS.C{index:03X}"
        assert namespace[device] == "device"
        assert namespace[f"{device}._HID"] == "ACPI0007"
        assert namespace[f"{device}._UID"] == index
        assert namespace[f"{device}._STA"] == ("method", 0)
        assert namespace[f"{device}._OST"] == ("method", 3)


@pytest.mark.parametrize(
    ("smp", "allow_cold_unplug", "ejectable"),
    [
        ("cpus=2,maxcpus=5", False, {2, 3, 4}),
        ("cpus=2,maxcpus=5", True, {1, 2, 3, 4}),
        ("cpus=1,maxcpus=1", True, set()),
    ],
)
def test_ej0_only_where_unplug_is_allowed(
    smp: str, allow_cold_unplug: bool, ejectable: set[int]
) -> None:
    machine = make_machine(smp, allow_cold_unplug=allow_cold_unplug)
    namespace = aml_namespace(build_tables(machine.description).tables["DSDT"])
    found = {
        index for index in range(machine.config.smp.maxcpus)
        if f"\\_SB.CPUS.C{index:03X}._EJ0" in namespace
    }
    assert found == ejectable


def test_mat_is_the_madt_gicc_with_enabled_set() -> None:
    machine = make_machine("cpus=1,maxcpus=3")
    tables = build_tables(machine.description)
    namespace = aml_namespace(tables.tables["DSDT"])
    madt = tables.tables["APIC"]
    for index in range(3):
        mat = namespace[f"\\_SB.CPUS.C{index:03X}._MAT"]
        assert isinstance(mat, bytes)
        entry = bytearray(madt[44 + 80 * index : 44 + 80 * (index + 1)])
        entry[12:16] = (1).to_bytes(4, "little")
        assert mat == bytes(entry)


def test_tables_for_a_realized_machine_match_the_unrealized_ones() -> None:
    machine = make_machine("cpus=2,maxcpus=4")
    before = build_tables(machine.description).tables
    machine.realize()
    try:
        assert build_tables(machine.description).tables == before
    finally:
        machine.shutdown()


def test_boot_prepare_places_the_tables_where_the_guest_looks() -> None:
    """The contract boot.prepare relies on: build_tables(description).place(memory, base)."""
    from vcpuhp import boot

    machine = make_machine("cpus=2,maxcpus=4")
    machine.realize()
    try:
        assert machine.memory is not None
        image = boot.prepare(machine)
        assert image.rsdp_address == memmap.ACPI_TABLES_ADDR
        assert machine.memory.read(image.rsdp_address, 8) == b"RSD PTR "
        madt_address = image.tables.addresses["APIC"]
        placed = machine.memory.read(madt_address, len(image.tables.tables["APIC"]))
        assert decode_madt(placed).giccs[3].mpidr == machine.topology.slots[3].arch_id
    finally:
        machine.shutdown()
