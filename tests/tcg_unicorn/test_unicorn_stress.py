"""Random plug, unplug, pause and resume against the running bundled guest: no hang, no leak.

Requests arrive without waiting for the guest (a ``device_del`` before the CPU
came online, a pause in the middle of the guest's hotplug handler), so the
backend's locking is exercised the way a QMP client could.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable

import pytest
from unicorn_testlib import SETTLE, console_has, require_unicorn, wait_until

require_unicorn()

from vcpuhp import events as ev  # noqa: E402
from vcpuhp.errors import VcpuhpError  # noqa: E402
from vcpuhp.machine import VirtMachine  # noqa: E402

MakeMachine = Callable[..., VirtMachine]
STEPS = 300


def settle(machine: VirtMachine) -> None:
    """Unplug whatever is still plugged and wait until the guest ejected it all."""
    deadline = time.monotonic() + SETTLE
    while any(v.device_id for v in machine.vcpus):
        for vcpu in machine.vcpus:
            if vcpu.device_id and not vcpu.remove_pending:
                with contextlib.suppress(VcpuhpError):
                    machine.device_del(vcpu.device_id)
        assert time.monotonic() < deadline, [v.state_dict() for v in machine.vcpus]
        time.sleep(0.01)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_requests_leave_a_consistent_machine(
    unicorn_machine: MakeMachine, seed: int
) -> None:
    rnd = random.Random(seed)
    machine = unicorn_machine("cpus=2,maxcpus=6", guest_cmdline="maxcpus=2")
    wait_until(console_has(machine, "possible 0-5 present 0-5 enabled 0-1 online 0-1"),
               what="guest boot")
    faults: list[ev.MachineEvent] = []
    machine.events.subscribe(lambda e: faults.append(e) if e.name == ev.VCPU_FAULT else None)
    start = machine.backend_stats()
    for n in range(STEPS):
        choice = rnd.random()
        try:
            if choice < 0.45:
                machine.device_add("max-arm-cpu", f"d{n}", **{"core-id": rnd.randint(2, 5)})
            elif choice < 0.85:
                plugged = [v.device_id for v in machine.vcpus if v.device_id]
                if plugged:
                    machine.device_del(rnd.choice(plugged))
            else:
                machine.stop()
                time.sleep(rnd.random() * 0.002)
                machine.cont()
        except VcpuhpError:
            pass  # refusals (slot taken, unplug already requested) are part of the game
        time.sleep(rnd.random() * 0.003)
        machine.check_invariants()
    settle(machine)
    wait_until(lambda: machine.cpu_masks().online == {0, 1}, what="only the boot CPUs online")
    end = machine.backend_stats()
    for key in ("engines", "threads", "contexts_registered", "contexts_free"):
        assert end[key] == start[key], key
    assert end["total_registrations"] - end["total_unregistrations"] == 2
    assert not faults, faults[0].data
    machine.check_invariants()
