"""device_del the guest never answers, asked again, or asked while paused (issue 8, items 8, 12).

QEMU waits forever for an eject; vcpuhp adds a way out (a timeout or an
explicit cancel) that ends in ``DEVICE_UNPLUG_GUEST_ERROR`` and leaves the
CPU plugged, enabled and usable, with the remove event cleared.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import pytest

from vcpuhp import VirtMachine
from vcpuhp import events as ev
from vcpuhp.errors import ConfigError, DeviceError
from vcpuhp.vcpu import VcpuState
from vcpuhp_null import GuestDriver
from vcpuhp_null.autopilot import AutopilotGuest

Booted = Callable[..., tuple[VirtMachine, GuestDriver]]


def _plugged_online(booted: Booted, **config: object) -> tuple[VirtMachine, GuestDriver]:
    machine, driver = booted("cpus=1,maxcpus=3", **config)
    machine.device_add("max-arm-cpu", "c1", **{"core-id": 1})
    driver.handle_hotplug()
    assert machine.vcpus[1].online
    return machine, driver


def _assert_usable(machine: VirtMachine, driver: GuestDriver) -> None:
    """Plugged, enabled, id kept, no remove event; the guest can online it and unplug it."""
    vcpu = machine.vcpus[1]
    assert vcpu.enabled and vcpu.device_id == "c1"
    assert not vcpu.remove_pending and not vcpu.unplug_requested
    assert driver.scan() == [], "a later guest scan finds nothing to eject"
    if not vcpu.online:
        assert driver.cpu_on(1) == 0
    assert vcpu.online
    machine.device_del("c1")
    driver.handle_hotplug()
    assert not vcpu.enabled
    machine.check_invariants()


def test_cancel_withdraws_the_request_with_a_guest_error_event(booted: Booted) -> None:
    machine, driver = _plugged_online(booted)
    with machine.events.recorder() as recorder:
        machine.device_del("c1")
        machine.cancel_unplug("c1")
        error = recorder.wait_for(ev.DEVICE_UNPLUG_GUEST_ERROR)
    assert error.data == {"device": "c1", "path": "/machine/peripheral/c1"}
    _assert_usable(machine, driver)


def test_a_guest_that_never_ejects_times_out(booted: Booted) -> None:
    machine, driver = _plugged_online(booted)
    with machine.events.recorder() as recorder:
        machine.device_del("c1", timeout=0.05)
        error = recorder.wait_for(ev.DEVICE_UNPLUG_GUEST_ERROR, timeout=30)
    assert error.data["device"] == "c1"
    assert [t.name for t in threading.enumerate()].count("vcpuhp-unplug-watchdog") == 1
    _assert_usable(machine, driver)


def test_the_machine_default_timeout_applies_and_inf_overrides_it(booted: Booted) -> None:
    machine, driver = _plugged_online(booted, unplug_timeout=0.05)
    with machine.events.recorder() as recorder:
        machine.device_del("c1")
        recorder.wait_for(ev.DEVICE_UNPLUG_GUEST_ERROR, timeout=30)
    machine.device_del("c1", timeout=math.inf)
    assert machine.unplug_watchdog.pending() == {}, "no deadline: waits like QEMU"
    driver.handle_hotplug()
    assert not machine.vcpus[1].enabled


def test_a_cpu_the_guest_took_offline_stays_plugged_after_the_timeout(booted: Booted) -> None:
    """The guest offlined it but never wrote _EJ0: it stays enabled, powered off."""
    machine, driver = _plugged_online(booted)
    machine.device_del("c1")
    assert driver.scan()[0].kind == "remove"
    assert driver.cpu_off(1) == 0
    machine.cancel_unplug("c1")
    assert machine.vcpus[1].state is VcpuState.POWERED_OFF
    _assert_usable(machine, driver)


def test_an_eject_in_time_disarms_the_deadline(booted: Booted) -> None:
    machine, driver = _plugged_online(booted)
    with machine.events.recorder() as recorder:
        machine.device_del("c1", timeout=3600)
        assert set(machine.unplug_watchdog.pending()) == {1}
        driver.handle_hotplug()
        recorder.wait_for(ev.DEVICE_DELETED)
    assert machine.unplug_watchdog.pending() == {}
    assert ev.DEVICE_UNPLUG_GUEST_ERROR not in recorder.names()


def test_shutdown_stops_the_watchdog(booted: Booted) -> None:
    machine, _ = _plugged_online(booted)
    machine.device_del("c1", timeout=3600)
    machine.shutdown()
    assert "vcpuhp-unplug-watchdog" not in [t.name for t in threading.enumerate()]


def test_an_invalid_machine_timeout_is_a_config_error(booted: Booted) -> None:
    with pytest.raises(ConfigError, match="unplug timeout -1 is invalid"):
        booted("cpus=1,maxcpus=2", unplug_timeout=-1)


def test_a_repeated_device_del_asks_the_guest_again(booted: Booted) -> None:
    """As QEMU: the second request re-sets the remove event and raises the GED again."""
    machine, driver = _plugged_online(booted)
    machine.device_del("c1")
    assert [e.kind for e in driver.scan()] == ["remove"]  # the guest saw it ... and ignored it
    assert not machine.vcpus[1].remove_pending
    with machine.events.recorder() as recorder:
        machine.device_del("c1")
        assert recorder.wait_for(ev.INTERRUPT).data["cpu_index"] == 0
    assert machine.vcpus[1].remove_pending
    driver.handle_hotplug()
    assert not machine.vcpus[1].enabled


def test_cancel_of_an_unknown_device_is_device_not_found(booted: Booted) -> None:
    machine, _ = booted("cpus=1,maxcpus=2")
    with pytest.raises(DeviceError, match="Device 'nosuch' not found"):
        machine.cancel_unplug("nosuch")


def test_the_autopilot_does_nothing_while_paused_and_catches_up_on_cont(
    null_machine: Callable[..., VirtMachine],
) -> None:
    machine = null_machine("cpus=1,maxcpus=3")
    autopilot = AutopilotGuest(machine)
    autopilot.start()
    try:
        machine.device_add("max-arm-cpu", "c1", **{"core-id": 1})
        autopilot.settle()
        assert machine.vcpus[1].online
        machine.stop()
        machine.device_del("c1")
        machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
        autopilot.settle()
        assert machine.vcpus[1].online, "a paused guest ejects nothing"
        assert not machine.vcpus[2].online, "... and onlines nothing"
        with machine.events.recorder() as recorder:
            machine.cont()
            recorder.wait_for(ev.DEVICE_DELETED, timeout=30)
            recorder.wait_for(ev.CPU_POWERED_ON, lambda e: e.data["cpu_index"] == 2, timeout=30)
        assert machine.cpu_masks().online == {0, 2}
    finally:
        autopilot.close()


def test_each_null_cpu_reports_a_thread_of_its_own(booted: Booted) -> None:
    machine, _ = booted("cpus=3,maxcpus=4")
    ids = [row["thread-id"] for row in machine.query_cpus_fast()]
    assert len(ids) == 3 and len(set(ids)) == 3
    native = {t.native_id for t in threading.enumerate()}
    assert set(ids) <= native, "real host threads"
    assert threading.get_native_id() not in ids
    assert machine.backend_stats()["threads"] == 3
    machine.device_add("max-arm-cpu", "c3", **{"core-id": 3})
    assert machine.backend_stats()["threads"] == 4
    machine.shutdown()
    assert not set(ids) & {t.native_id for t in threading.enumerate()}, "joined at shutdown"
