"""-smp parsing with QEMU's rules, slots and arch ids."""

from __future__ import annotations

import pytest

from vcpuhp import SmpConfig, Topology, TopologyError
from vcpuhp.topology import mpidr_affinity


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4", (4, 4, 1, 1, 4, 1)),
        ("cpus=2,maxcpus=8", (2, 8, 1, 1, 8, 1)),
        ("cpus=4,maxcpus=6", (4, 6, 1, 1, 6, 1)),
        ("maxcpus=8", (8, 8, 1, 1, 8, 1)),
        ("cpus=2,maxcpus=8,sockets=2,cores=2,threads=2", (2, 8, 2, 1, 2, 2)),
        ("cpus=4,sockets=2", (4, 4, 2, 1, 2, 1)),
        ("cpus=4,maxcpus=16,sockets=2,clusters=2", (4, 16, 2, 2, 4, 1)),
        ("cpus=8,cores=4", (8, 8, 2, 1, 4, 1)),
        ("cpus=8,sockets=2,cores=2", (8, 8, 2, 1, 2, 2)),
        ("sockets=2,cores=3,threads=2", (12, 12, 2, 1, 3, 2)),
        ("cpus=1,maxcpus=512", (1, 512, 1, 1, 512, 1)),
    ],
)
def test_qemu_derivation_rules(text: str, expected: tuple[int, ...]) -> None:
    smp = SmpConfig.parse(text)
    assert (smp.cpus, smp.maxcpus, smp.sockets, smp.clusters, smp.cores, smp.threads) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cpus=0", "greater than zero"),
        ("cpus=-1", "greater than zero"),
        ("cpus=4,maxcpus=2", r"maxcpus \(2\) must be equal to or greater than cpus \(4\)"),
        ("cpus=4,sockets=3", r"must equal maxcpus \(4\)"),
        ("cpus=8,sockets=2,cores=2,threads=3", r"= 12 must equal maxcpus \(8\)"),
        ("cpus=1,maxcpus=513", "out of range; the virt machine supports 1-512"),
        ("cpus=two", "not an integer"),
        ("cpus=2,dies=2", "unknown parameter 'dies'"),
        ("cpus=2,cpus=3", "given more than once"),
        ("", "empty topology"),
        ("cpus=2,4", "needs a key"),
    ],
)
def test_bad_smp_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        SmpConfig.parse(text)


def test_slots_follow_socket_cluster_core_thread_order() -> None:
    topo = Topology(SmpConfig.parse("cpus=2,maxcpus=16,sockets=2,clusters=2,cores=2,threads=2"))
    assert len(topo.slots) == 16
    slot = topo.slots[13]
    assert (slot.socket_id, slot.cluster_id, slot.core_id, slot.thread_id) == (1, 1, 0, 1)
    assert topo.find_slot(slot.props()) is slot
    assert slot.props() == {"socket-id": 1, "cluster-id": 1, "core-id": 0, "thread-id": 1}


def test_arch_ids_keep_aff0_below_16_and_are_unique() -> None:
    topo = Topology(SmpConfig.parse("cpus=1,maxcpus=512"))
    ids = [slot.arch_id for slot in topo.slots]
    assert len(set(ids)) == 512
    assert all(a & 0xFF < 16 for a in ids)
    assert topo.slots[17].arch_id == 0x101 == mpidr_affinity(17)
    assert topo.slots[17].mpidr == 0x8000_0101
    assert topo.by_arch_id(0x101) is topo.slots[17]


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"core-id": 6}, "core-id 6 is out of range 0-5"),
        ({}, "core-id is not set; valid core-id values are 0-5"),
        ({"core-id": "4"}, "must be an integer"),
        ({"core-id": True}, "must be an integer"),
        ({"core-id": 1, "thread-id": 1}, "thread-id 1 is out of range 0-0"),
    ],
)
def test_find_slot_errors(props: dict[str, object], message: str) -> None:
    topo = Topology(SmpConfig.parse("cpus=4,maxcpus=6"))
    with pytest.raises(TopologyError, match=message):
        topo.find_slot(props)
