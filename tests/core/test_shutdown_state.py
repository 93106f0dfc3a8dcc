"""After shutdown the machine says so everywhere (issue 8, item 6)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from vcpuhp import MachineConfig, VirtMachine, memmap
from vcpuhp.errors import GuestError, StateError
from vcpuhp_null import GuestDriver

Booted = Callable[..., tuple[VirtMachine, GuestDriver]]


def test_after_shutdown_no_cpu_is_online_and_nothing_is_parked(booted: Booted) -> None:
    machine, _ = booted("cpus=2,maxcpus=4")
    assert machine.cpu_masks().online == {0, 1}
    assert machine.backend_stats()["parked"] == 2
    machine.shutdown()
    masks = machine.cpu_masks()
    assert masks.online == frozenset()
    assert masks.enabled == {0, 1}, "what the guest was told stays: shutdown ejects nothing"
    stats = machine.backend_stats()
    assert stats["parked"] == 0
    assert stats.get("vcpus", 0) == 0
    assert machine.query_status() == {"running": False, "status": "shutdown"}


def test_a_shut_down_machine_cannot_be_entered_or_realized_again() -> None:
    machine = VirtMachine(MachineConfig.build("cpus=1,maxcpus=2", accel="null"))
    with machine:
        pass
    with pytest.raises(StateError, match="shut down; build a new VirtMachine"), machine:
        pass
    with pytest.raises(StateError, match="shut down"):
        machine.realize()


def test_after_shutdown_register_writes_are_not_taken(booted: Booted) -> None:
    machine, _ = booted("cpus=2,maxcpus=4")
    machine.shutdown()
    before = machine.cpu_hotplug.state()
    with pytest.raises(GuestError, match="shut down"):
        machine.mmio_write(memmap.CPU_HOTPLUG.base, 4, 1)
    assert machine.cpu_hotplug.state() == before


def test_shutdown_twice_is_harmless(booted: Booted) -> None:
    machine, _ = booted("cpus=2,maxcpus=4")
    machine.shutdown()
    machine.shutdown()
    assert machine.memory is None
