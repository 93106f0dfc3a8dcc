"""GuestDriver.handle_hotplug reports the _OST status of what really happened."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from vcpuhp import VirtMachine
from vcpuhp import events as ev
from vcpuhp.errors import PolicyRefused
from vcpuhp_null import GuestDriver


def _eject_osts(recorder: ev.EventRecorder) -> list[int]:
    recorder.names()
    return [e.data["info"]["status"] for e in recorder.seen
            if e.name == ev.ACPI_DEVICE_OST and e.data["info"]["source"] == 0x3]


def test_denied_cpu_off_reports_ost_failure(null_machine: Callable[..., VirtMachine]) -> None:
    machine = null_machine("cpus=1,maxcpus=3")
    GuestDriver(machine).boot()
    machine.device_add("max-arm-cpu", "c1", **{"core-id": 1})
    GuestDriver(machine).handle_hotplug()
    assert GuestDriver(machine).cpu_off(0) == 0  # CPU 1 is now the last one running
    guest = GuestDriver(machine, boot_cpu=1)
    machine.device_del("c1")
    with machine.events.recorder() as recorder:
        guest.handle_hotplug()
        recorder.wait_for(ev.DEVICE_UNPLUG_GUEST_ERROR, timeout=1)
    assert _eject_osts(recorder) == [0x1]
    assert ev.DEVICE_DELETED not in recorder.names()
    assert machine.vcpus[1].enabled and machine.vcpus[1].online
    machine.check_invariants()


def test_refused_eject_reports_ost_failure(
    null_machine: Callable[..., VirtMachine], monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = null_machine("cpus=1,maxcpus=3")
    guest = GuestDriver(machine)
    guest.boot()
    machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
    guest.handle_hotplug()
    machine.device_del("c2")

    def refuse(index: int) -> None:
        raise PolicyRefused(f"CPU {index} is pinned")

    monkeypatch.setattr(machine, "eject", refuse)
    with machine.events.recorder() as recorder:
        guest.handle_hotplug()
        error = recorder.wait_for(ev.DEVICE_UNPLUG_GUEST_ERROR, timeout=1)
    assert error.data["device"] == "c2"
    assert _eject_osts(recorder) == [0x1]
    assert machine.vcpus[2].enabled


def test_successful_eject_still_reports_ost_success(
    null_machine: Callable[..., VirtMachine],
) -> None:
    machine = null_machine("cpus=1,maxcpus=3")
    guest = GuestDriver(machine)
    guest.boot()
    machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
    guest.handle_hotplug()
    machine.device_del("c2")
    with machine.events.recorder() as recorder:
        guest.handle_hotplug()
        recorder.wait_for(ev.DEVICE_DELETED, timeout=1)
    assert _eject_osts(recorder) == [0x0]
    assert ev.DEVICE_UNPLUG_GUEST_ERROR not in recorder.names()
    assert not machine.vcpus[2].enabled
