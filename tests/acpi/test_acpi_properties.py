"""Across random topologies, the tables agree with the machine's slots and GIC layout.

Every check decodes the tables with the independent decoders of
``acpi_testlib`` and compares them with :class:`~vcpuhp.topology.Topology`
and :class:`~vcpuhp.gic.Gicv3`, never with the builder's own helpers.
"""

from __future__ import annotations

from acpi_testlib import aml_namespace, decode_gicc, decode_madt, decode_pptt
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vcpuhp.acpi import build_tables
from vcpuhp.config import MachineConfig
from vcpuhp.machine import VirtMachine
from vcpuhp.topology import MAX_CPUS, SmpConfig

ENABLED, ONLINE_CAPABLE = 1 << 0, 1 << 3
PHYSICAL_PACKAGE, ID_VALID, THREAD, LEAF = 1 << 0, 1 << 1, 1 << 2, 1 << 3


@st.composite
def machines(draw: st.DrawFn) -> VirtMachine:
    sockets = draw(st.integers(1, 4))
    clusters = draw(st.integers(1, 3))
    threads = draw(st.integers(1, 4))
    cores = draw(st.integers(1, max(1, min(64, MAX_CPUS // (sockets * clusters * threads)))))
    maxcpus = sockets * clusters * cores * threads
    cpus = draw(st.integers(1, maxcpus))
    smp = SmpConfig.from_values(cpus=cpus, maxcpus=maxcpus, sockets=sockets,
                                clusters=clusters, cores=cores, threads=threads)
    allow_cold_unplug = draw(st.booleans())
    return VirtMachine(MachineConfig(smp, allow_cold_unplug=allow_cold_unplug))


def _machine(smp: str, *, allow_cold_unplug: bool = False) -> VirtMachine:
    return VirtMachine(MachineConfig.build(smp, allow_cold_unplug=allow_cold_unplug))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(machine=machines())
@example(machine=_machine("cpus=4,maxcpus=512"))
@example(machine=_machine("cpus=124,sockets=2,clusters=2,cores=31", allow_cold_unplug=True))
@example(machine=_machine("1"))
def test_tables_agree_with_slots_and_gic(machine: VirtMachine) -> None:
    tables = build_tables(machine.description).tables
    topology, gic = machine.topology, machine.gic
    for signature, table in tables.items():
        assert sum(table) % 256 == 0, signature
    assert sum(tables["RSDP"][:20]) % 256 == 0

    # MADT: one GICC per possible CPU, Enabled xor Online Capable
    madt = decode_madt(tables["APIC"])
    assert len(madt.giccs) == len(topology.slots)
    for gicc, slot in zip(madt.giccs, topology.slots, strict=True):
        assert gicc.uid == gicc.interface == slot.index
        assert gicc.mpidr == slot.arch_id
        assert gicc.flags == (ENABLED if topology.is_cold_booted(slot) else ONLINE_CAPABLE)

    # GICR structures: exactly the regions, and every CPU's redistributor inside one,
    # at the position its index gives and with GICR_TYPER naming the same MPIDR
    assert madt.gicrs == [(r.base, r.count * 0x2_0000) for r in gic.regions]
    first = 0
    for base, length in madt.gicrs:
        count = length // 0x2_0000
        for n, cpu in enumerate(gic.cpus[first : first + count]):
            assert cpu.rd_base == base + n * 0x2_0000
            assert cpu.typer >> 32 == cpu.slot.arch_id
            assert cpu.last == (n == count - 1)
        first += count
    assert first == len(topology.slots)

    # DSDT: one Cxxx per possible CPU; _MAT is its GICC with Enabled set; _EJ0 per policy
    namespace = aml_namespace(tables["DSDT"])
    for slot in topology.slots:
        device = rf"\_SB.CPUS.C{slot.index:03X}"
        assert namespace[f"{device}._UID"] == slot.index
        mat = namespace[f"{device}._MAT"]
        assert isinstance(mat, bytes)
        entry = decode_gicc(mat)
        assert (entry.uid, entry.mpidr, entry.flags) == (slot.index, slot.arch_id, ENABLED)
        madt_entry = tables["APIC"][44 + 80 * slot.index : 44 + 80 * (slot.index + 1)]
        assert mat[:12] == madt_entry[:12] and mat[16:] == madt_entry[16:]
        unpluggable = slot.index != 0 and (
            not topology.is_cold_booted(slot) or machine.config.allow_cold_unplug
        )
        assert (f"{device}._EJ0" in namespace) == unpluggable

    # PPTT: each leaf's ancestors are the slot's core, cluster and socket
    smp = topology.smp
    nodes = decode_pptt(tables["PPTT"])
    leaves = {n.acpi_id: n for n in nodes.values() if n.flags & LEAF}
    assert sorted(leaves) == [slot.index for slot in topology.slots]
    for slot in topology.slots:
        node = leaves[slot.index]
        assert node.flags == ID_VALID | LEAF | (THREAD if smp.threads > 1 else 0)
        levels = [(smp.threads > 1, slot.core_id), (smp.clusters > 1, slot.cluster_id)]
        for present, expected_id in levels:
            if present:
                node = nodes[node.parent]
                assert (node.flags, node.acpi_id) == (ID_VALID, expected_id)
        socket = nodes[node.parent]
        assert (socket.flags, socket.acpi_id, socket.parent) == (
            PHYSICAL_PACKAGE | ID_VALID, slot.socket_id, 0
        )
    expected_nodes = smp.sockets * (1 + (smp.clusters if smp.clusters > 1 else 0))
    expected_nodes += (smp.maxcpus // smp.threads if smp.threads > 1 else 0) + smp.maxcpus
    assert len(nodes) == expected_nodes
