"""The backend conformance suite: one set of behaviours every backend must show.

Tests take the ``make_machine`` and ``cooperative_guest`` fixtures; what a
test needs from the backend is declared with ``@pytest.mark.requires(...)``
capability names (never backend names). On a backend that executes guest
code, the guest is the real bundled one; otherwise the null autopilot plays it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vcpuhp import events as ev
from vcpuhp.errors import DeviceError, DeviceNotFound, PolicyRefused, TopologyError
from vcpuhp.machine import VirtMachine
from vcpuhp.vcpu import VcpuState

__all__ = [
    "cooperative_guest",
    "test_cycles_leave_resource_counts_unchanged",
    "test_device_add_refusals_leave_state_unchanged",
    "test_every_possible_cpu_is_present",
    "test_parked_vcpus_are_possible_minus_realized",
    "test_plug_then_unplug_round_trip",
    "test_unplug_of_cold_booted_cpu_is_refused",
]

SETTLE = 60.0


@pytest.fixture
def cooperative_guest() -> Iterator[Callable[[VirtMachine, int | None], None]]:
    """``cooperative_guest(machine, maxcpus)``: make sure something answers hotplug."""
    started: list[Any] = []

    def start(machine: VirtMachine, maxcpus: int | None = None) -> None:
        if machine.backend.capabilities.executes_guest_code:
            return
        from vcpuhp_null.autopilot import AutopilotGuest

        guest = AutopilotGuest(machine, maxcpus)
        guest.start()
        started.append(guest)

    yield start
    for guest in started:
        guest.close()


def _guest_cmdline(maxcpus: int) -> dict[str, Any]:
    return {"guest_cmdline": f"maxcpus={maxcpus}"}


def _wait_online(machine: VirtMachine, count: int) -> None:
    done = threading.Event()

    def check(_: ev.MachineEvent | None = None) -> None:
        if len(machine.cpu_masks().online) >= count:
            done.set()

    unsubscribe = machine.events.subscribe(check)
    check()
    try:
        assert done.wait(SETTLE), f"only {machine.cpu_masks().online} online, wanted {count}"
    finally:
        unsubscribe()


def test_every_possible_cpu_is_present(make_machine: Callable[..., VirtMachine]) -> None:
    machine = make_machine("cpus=2,maxcpus=6", **_guest_cmdline(2))
    masks = machine.cpu_masks()
    assert masks.possible == masks.present == frozenset(range(6))
    assert masks.enabled == {0, 1}


@pytest.mark.requires("parks_vcpus")
def test_parked_vcpus_are_possible_minus_realized(
    make_machine: Callable[..., VirtMachine],
) -> None:
    machine = make_machine("cpus=3,maxcpus=8", **_guest_cmdline(3))
    assert sorted(machine.parked) == [s.arch_id for s in machine.topology.slots[3:]]
    machine.check_invariants()


def _paused_snapshot(machine: VirtMachine) -> bytes:
    """Pause the machine (so a running guest changes nothing) and return its settled snapshot.

    A vCPU that was waiting for the machine lock when ``stop`` took it still
    completes that one access; the snapshot is taken once two agree.
    """
    machine.stop()
    snapshot = machine.snapshot_bytes()
    for _ in range(100):
        time.sleep(0.01)
        again = machine.snapshot_bytes()
        if again == snapshot:
            break
        snapshot = again
    return snapshot


def test_device_add_refusals_leave_state_unchanged(
    make_machine: Callable[..., VirtMachine],
) -> None:
    machine = make_machine("cpus=2,maxcpus=4", **_guest_cmdline(2))
    before = _paused_snapshot(machine)
    cpu = machine.config.cpu_type
    bad: list[tuple[Callable[[], object], type[Exception], str]] = [
        (lambda: machine.device_add("nosuch-cpu", "c2", **{"core-id": 2}), DeviceError,
         "valid:"),
        (lambda: machine.device_add("cortex-a57-arm-cpu" if cpu != "cortex-a57-arm-cpu"
                                    else "max-arm-cpu", "c2", **{"core-id": 2}),
         DeviceError, "does not match"),
        (lambda: machine.device_add(cpu, None, **{"core-id": 2}), DeviceError, "needs an 'id'"),
        (lambda: machine.device_add(cpu, "c2", **{"core-id": 9}), TopologyError, "0-3"),
        (lambda: machine.device_add(cpu, "c2", **{"core-id": 0}), DeviceError,
         "already plugged"),
        (lambda: machine.device_add(cpu, "c2", **{"core-id": 2, "bogus": 1}), DeviceError,
         "bogus"),
        (lambda: machine.device_del("nosuch"), DeviceNotFound, "not found"),
    ]
    for call, error, words in bad:
        with pytest.raises(error, match=words):
            call()
        assert machine.snapshot_bytes() == before


def test_unplug_of_cold_booted_cpu_is_refused(make_machine: Callable[..., VirtMachine]) -> None:
    machine = make_machine("cpus=2,maxcpus=4", **_guest_cmdline(2))
    before = _paused_snapshot(machine)
    with pytest.raises(PolicyRefused, match="enabled at boot"):
        machine.device_del(machine.vcpus[1].qom_path)
    assert machine.snapshot_bytes() == before


def _cycle(machine: VirtMachine, index: int, device_id: str) -> None:
    props = machine.topology.slots[index].props()
    with machine.events.recorder() as recorder:
        machine.device_add(machine.config.cpu_type, device_id, **props)
        recorder.wait_for(ev.CPU_POWERED_ON, lambda e: e.data["cpu_index"] == index,
                          timeout=SETTLE)
        machine.device_del(device_id)
        recorder.wait_for(ev.DEVICE_DELETED, lambda e: e.data["device"] == device_id,
                          timeout=SETTLE)


def test_plug_then_unplug_round_trip(
    make_machine: Callable[..., VirtMachine],
    cooperative_guest: Callable[[VirtMachine, int | None], None],
) -> None:
    machine = make_machine("cpus=4,maxcpus=6", **_guest_cmdline(2))
    cooperative_guest(machine, 2)
    _wait_online(machine, 2)
    with machine.events.recorder() as recorder:
        machine.device_add(machine.config.cpu_type, "core4", **{"core-id": 4})
        recorder.wait_for(ev.CPU_POWERED_ON, lambda e: e.data["cpu_index"] == 4, timeout=SETTLE)
        assert machine.cpu_masks().enabled == {0, 1, 2, 3, 4}
        assert 4 in machine.cpu_masks().online
        machine.device_del("core4")
        deleted = recorder.wait_for(ev.DEVICE_DELETED, timeout=SETTLE)
    assert deleted.data["device"] == "core4"
    assert deleted.data["path"] == "/machine/peripheral/core4"
    assert machine.cpu_masks().enabled == {0, 1, 2, 3}
    assert machine.vcpus[4].state is VcpuState.UNPLUGGED
    machine.check_invariants()


def test_cycles_leave_resource_counts_unchanged(
    make_machine: Callable[..., VirtMachine],
    cooperative_guest: Callable[[VirtMachine, int | None], None],
) -> None:
    machine = make_machine("cpus=2,maxcpus=4", **_guest_cmdline(2))
    cooperative_guest(machine, 2)
    _wait_online(machine, 2)
    baseline = machine.backend_stats()
    threads = threading.active_count()
    for n in range(20):
        _cycle(machine, 2 + n % 2, f"cpu{n}")
    after = machine.backend_stats()
    for key in baseline:
        if not key.startswith("total") and key not in ("realizations", "created", "peak"):
            assert after[key] == baseline[key], f"{key}: {baseline[key]} -> {after[key]}"
    assert threading.active_count() == threads
    machine.check_invariants()
