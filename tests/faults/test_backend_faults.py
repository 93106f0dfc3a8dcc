"""A backend that fails in each contract method, at each step of a plug/unplug cycle.

Whatever fails, the machine keeps its invariants; a refused request leaves it
exactly as it was; and once the fault is gone the same CPU plugs, onlines,
offlines and unplugs again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from vcpuhp import MachineConfig, VirtMachine
from vcpuhp import events as ev
from vcpuhp.errors import VcpuhpError
from vcpuhp_null import GuestDriver

from .faulty_backend import CYCLE_METHODS, FaultyNullBackend, FaultyUnparkedBackend

Backend = type[FaultyNullBackend] | type[FaultyUnparkedBackend]
STEPS = ("device_add", "cpu_on", "cpu_off", "eject")


@pytest.fixture(params=[FaultyNullBackend, FaultyUnparkedBackend], ids=["parking", "unparked"])
def faulty(request: pytest.FixtureRequest) -> Iterator[tuple[VirtMachine, GuestDriver]]:
    backend_class: Backend = request.param
    machine = VirtMachine(MachineConfig.build("cpus=2,maxcpus=3", accel="null"),
                          backend=backend_class())
    machine.realize()
    driver = GuestDriver(machine)
    driver.boot()
    yield machine, driver
    machine.shutdown()


def _step(machine: VirtMachine, driver: GuestDriver, step: str) -> Callable[[], object]:
    actions: dict[str, Callable[[], object]] = {
        "device_add": lambda: machine.device_add("max-arm-cpu", "c2", **{"core-id": 2}),
        "cpu_on": lambda: driver.cpu_on(2),
        "cpu_off": lambda: driver.cpu_off(2),
        "eject": lambda: driver.eject(2),
    }
    return actions[step]


def _gauges(machine: VirtMachine) -> dict[str, object]:
    """Backend stats that count what exists now (not cumulative counters)."""
    return {k: v for k, v in machine.backend_stats().items()
            if not k.startswith("total") and k not in ("created", "destroyed")}


def _cycle(machine: VirtMachine, driver: GuestDriver) -> None:
    """A full, fault-free cycle on CPU 2."""
    if not machine.vcpus[2].enabled:
        machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
    if not machine.vcpus[2].online:
        assert driver.cpu_on(2) == 0
    assert machine.vcpus[2].online
    assert driver.cpu_off(2) == 0
    driver.eject(2)
    assert not machine.vcpus[2].enabled
    machine.check_invariants()


@pytest.mark.parametrize("method", CYCLE_METHODS)
@pytest.mark.parametrize("step", STEPS)
def test_a_failure_in_any_method_at_any_step_rolls_back(
    faulty: tuple[VirtMachine, GuestDriver], step: str, method: str
) -> None:
    machine, driver = faulty
    backend = machine.backend
    assert isinstance(backend, FaultyNullBackend | FaultyUnparkedBackend)
    for previous in STEPS[: STEPS.index(step)]:  # get to the step, fault-free
        _step(machine, driver, previous)()
    driver.select(2)  # the guest's own selector write is not part of what may be refused
    before = machine.snapshot_bytes()
    stats_before = _gauges(machine)
    backend.faults.arm(method)
    with machine.events.recorder() as recorder:
        try:
            result = _step(machine, driver, step)()
        except VcpuhpError:
            result = "refused"
        machine.events.flush()
    fired = backend.faults.fired
    backend.faults.arm("")  # disarm what did not fire
    machine.check_invariants()
    if fired:
        refused = result == "refused" or (step in ("cpu_on", "cpu_off") and result != 0) \
            or (step == "eject" and ev.GUEST_ERROR in recorder.names())
        if refused:
            assert machine.snapshot_bytes() == before, f"{method} failed in {step}: changed"
            assert _gauges(machine) == stats_before
    _cycle(machine, driver)
    _cycle(machine, driver)
    assert machine.backend_stats()["realized"] == 2
