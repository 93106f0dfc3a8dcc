"""The seed sample (possible 0-5, present 0-5, enabled 0-3, online 0-1, and after a plug
of CPU 4 and onlining it enabled 0-4, online 0-1,4) on the null backend, through the
Python API and the socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vcpuhp import CpuMasks, VirtMachine
from vcpuhp import events as ev
from vcpuhp_null import GuestDriver
from vcpuhp_null.protocol import ProtocolClient, ProtocolServer

BOOTED = "possible 0-5 present 0-5 enabled 0-3 online 0-1"
PLUGGED = "possible 0-5 present 0-5 enabled 0-4 online 0-1,4"


def test_seed_scenario_through_the_python_api(seed: tuple[VirtMachine, GuestDriver]) -> None:
    machine, driver = seed
    assert str(machine.cpu_masks()) == BOOTED

    with machine.events.recorder() as recorder:
        machine.device_add("max-arm-cpu", "core4", **{"core-id": 4})
        assert driver.read_ged() == 0x8
        assert [(e.index, e.kind) for e in driver.scan()] == [(4, "insert")]
        assert driver.arch_id(4) == machine.topology.slots[4].arch_id
        assert driver.cpu_on(4) == 0
        driver.ost(4, 0x1, 0x0)
        assert str(machine.cpu_masks()) == PLUGGED

        machine.device_del("core4")
        assert driver.read_ged() == 0x8
        assert [(e.index, e.kind) for e in driver.scan()] == [(4, "remove")]
        assert driver.cpu_off(4) == 0
        assert driver.affinity_info(4) == 1
        driver.eject(4)
        deleted = recorder.wait_for(ev.DEVICE_DELETED, timeout=1)
    assert deleted.data == {"device": "core4", "path": "/machine/peripheral/core4",
                            "cpu_index": 4}
    assert str(machine.cpu_masks()) == BOOTED
    osts = [e for e in recorder.seen if e.name == ev.ACPI_DEVICE_OST]
    assert osts[0].data["info"] == {"device": "core4", "slot": "4", "slot-type": "CPU",
                                    "source": 1, "status": 0}
    machine.check_invariants()


@pytest.fixture
def protocol(seed: tuple[VirtMachine, GuestDriver], tmp_path: Path) -> Iterator[ProtocolClient]:
    machine, _ = seed
    server = ProtocolServer(machine, f"unix:{tmp_path / 'qtest.sock'}")
    server.start()
    client = ProtocolClient.connect(f"unix:{tmp_path / 'qtest.sock'}")
    try:
        yield client
    finally:
        client.close()
        server.close()


def test_seed_scenario_through_the_socket_protocol(
    seed: tuple[VirtMachine, GuestDriver], protocol: ProtocolClient
) -> None:
    machine, _ = seed
    q = protocol
    hp, ged = 0x090C0000, 0x09080000
    mpidr4 = machine.topology.slots[4].mpidr
    assert q("masks") == f"OK {BOOTED}"

    assert q("device_add max-arm-cpu,id=core4,core-id=4") == "OK"
    assert "IRQ raise 0" in q.async_lines
    assert q("mrs 0 ICC_IAR1_EL1") == "OK 0x29"
    assert q(f"readl {ged:#x}") == "OK 0x8"
    assert q(f"writeb {hp + 5:#x} 0") == "OK"
    assert q(f"readl {hp + 8:#x}") == "OK 0x4"
    assert q(f"writel {hp:#x} 4") == "OK"
    assert q(f"readb {hp + 4:#x}") == "OK 0x3"
    assert q(f"writeb {hp + 4:#x} 0x2") == "OK"
    assert q(f"psci 0 CPU_ON_64 {mpidr4:#x} 0x40200000 4") == "OK 0"
    assert q("msr 0 ICC_EOIR1_EL1 0x29") == "OK"
    assert q("masks") == f"OK {PLUGGED}"

    assert q("device_del core4") == "OK"
    assert q("mrs 0 ICC_IAR1_EL1") == "OK 0x29"
    assert q(f"readl {ged:#x}") == "OK 0x8"
    assert q(f"writeb {hp + 5:#x} 0") == "OK"
    assert q(f"readl {hp + 8:#x}") == "OK 0x4"
    assert q(f"readb {hp + 4:#x}") == "OK 0x5"
    assert q(f"writeb {hp + 4:#x} 0x4") == "OK"
    assert q("psci 4 CPU_OFF") == "OK 0"
    assert q(f"psci 0 AFFINITY_INFO_64 {mpidr4:#x} 0") == "OK 1"
    assert q(f"writeb {hp + 4:#x} 0x8") == "OK"
    assert q("msr 0 ICC_EOIR1_EL1 0x29") == "OK"
    assert q("masks") == f"OK {BOOTED}"
    assert q.events("DEVICE_DELETED") == [
        {"cpu_index": 4, "device": "core4", "path": "/machine/peripheral/core4"}
    ]
    machine.check_invariants()


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("frobnicate", "ERR unknown command 'frobnicate'"),
        ("readl", "ERR usage: readl ADDR"),
        ("readl zzz", "ERR address 'zzz' is not a number"),
        ("readl 0x1", "ERR no device or RAM at 0x1"),
        ("readl 0x090C0001", "OK 0x0"),
        ("psci 9 PSCI_VERSION", "ERR CPU 9 is out of range 0-5"),
        ("psci 3 PSCI_VERSION", "ERR CPU 3 is powered-off: only a running CPU can call PSCI"),
        ("mrs 0 ICC_NOPE_EL1", "ERR 'ICC_NOPE_EL1' is not a GIC CPU interface register"),
        ("mrs 5 ICC_IAR1_EL1", "ERR GIC CPU interface of CPU 5 is not accessible"),
        ("device_del core9", "ERR Device 'core9' not found"),
        ("writeb 0x09000000 0x1ff", "ERR value 0x1ff does not fit in 1 bytes"),
        ("start 2", "ERR null: CPU 2 has no deferred start pending"),
    ],
)
def test_protocol_errors_leave_the_machine_unchanged(
    seed: tuple[VirtMachine, GuestDriver], protocol: ProtocolClient, line: str, reply: str
) -> None:
    machine, _ = seed
    before = machine.snapshot_bytes()
    assert protocol(line).startswith(reply)
    assert machine.snapshot_bytes() == before
    assert protocol("masks") == f"OK {BOOTED}"


def test_masks_parse_round_trip() -> None:
    masks = CpuMasks.parse(PLUGGED)
    assert masks.online == {0, 1, 4}
    assert str(masks) == PLUGGED
    assert str(CpuMasks.parse("possible 0-1 present 0-1 enabled 0 online")) == \
        "possible 0-1 present 0-1 enabled 0 online "


def test_a_second_null_machine_is_independent(
    null_machine: Callable[..., VirtMachine],
) -> None:
    first, second = null_machine("cpus=1,maxcpus=2"), null_machine("cpus=1,maxcpus=2")
    first.device_add("max-arm-cpu", "c1", **{"core-id": 1})
    assert second.cpu_masks().enabled == {0}
