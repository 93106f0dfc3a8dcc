"""The autopilot guest survives a failing interrupt handler and keeps answering."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from vcpuhp import VirtMachine
from vcpuhp import events as ev
from vcpuhp.errors import GuestError
from vcpuhp_null.autopilot import AutopilotGuest
from vcpuhp_null.driver import HotplugEvent


@pytest.mark.parametrize("error", [GuestError("guest bug"), RuntimeError("driver bug")],
                         ids=["vcpuhp-error", "other-exception"])
def test_a_failed_interrupt_is_still_ended_and_later_ones_are_handled(
    null_machine: Callable[..., VirtMachine], caplog: pytest.LogCaptureFixture,
    error: Exception,
) -> None:
    machine = null_machine("cpus=1,maxcpus=4")
    autopilot = AutopilotGuest(machine)
    autopilot.start()
    try:
        handle = autopilot.driver.handle_hotplug
        failures: list[Exception] = []

        def fail_once() -> list[HotplugEvent]:
            if not failures:
                failures.append(error)
                raise error
            return handle()

        autopilot.driver.handle_hotplug = fail_once  # type: ignore[method-assign]
        with caplog.at_level(logging.WARNING, logger="vcpuhp_null.autopilot"):
            machine.device_add("max-arm-cpu", "c1", **{"core-id": 1})
            deadline = time.monotonic() + 5
            while not failures and time.monotonic() < deadline:
                time.sleep(0.01)
            assert failures, "the autopilot never took the GED interrupt"
            with machine.events.recorder() as recorder:
                machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
                recorder.wait_for(ev.CPU_POWERED_ON, lambda e: e.data["cpu_index"] == 2,
                                  timeout=5)
        assert str(error) in caplog.text
        assert machine.cpu_masks().online == {0, 1, 2}
        assert machine.gic.cpus[0].active_stack == [], "every interrupt was ended"
    finally:
        autopilot.close()
