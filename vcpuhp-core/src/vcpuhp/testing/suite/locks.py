"""The lock rules: calls made with the machine lock held never wait for a vCPU thread
that is itself waiting for that lock.

The set-up is the same for both rules: the suite takes the machine lock and,
holding it, plugs a CPU and starts it (PSCI ``CPU_ON`` made by the boot CPU).
A backend that runs vCPUs on threads now has a thread that wants the lock
(to report ``vcpu_started``), and cannot get it. Still holding the lock, the
suite resets the machine (``power_off`` of that CPU) and, for the second
rule, ejects the CPU (``unrealize_vcpu``, which must end that thread). The
whole sequence runs on a helper thread with a deadline, so a deadlock is
reported as a failure naming the rule instead of hanging the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vcpuhp.backend import rule
from vcpuhp.testing.resources import Resources
from vcpuhp.testing.rig import NON_BLOCKING_BOUND, Rig, run_bounded
from vcpuhp.vcpu import VcpuState

RigFactory = Callable[..., Rig]


def _start_cpu_behind_the_lock(rig: Rig, index: int) -> None:
    """Holding the lock: plug CPU ``index`` and CPU_ON it; let its thread reach the lock."""
    machine = rig.machine
    machine.device_add(machine.config.cpu_type, f"locked{index}",
                       **machine.topology.slots[index].props())
    assert rig.guest.cpu_on(index) == 0
    time.sleep(rig.timeouts.quiet)  # the vCPU thread now waits for the lock we hold


class TestLockRules:
    """What the machine calls with its lock held must not wait for a vCPU thread."""

    def test_power_off_with_the_lock_held_does_not_wait_for_the_vcpu_thread(
        self, vcpuhp_rig: RigFactory,
    ) -> None:
        rig = vcpuhp_rig("cpus=1,maxcpus=3", guest="scripted")

        def under_the_lock() -> None:
            with rig.machine.lock:
                _start_cpu_behind_the_lock(rig, 2)
                rig.guest.system_reset()

        finished, error = run_bounded(under_the_lock, rig.timeouts.deadlock)
        if not finished:
            rig.poisoned = True
        assert finished, (f"SYSTEM_RESET with the machine lock held did not return within "
                          f"{rig.timeouts.deadlock:.0f}s; {rule('lock-power-off')}")
        assert error is None, error
        slow = [r for r in rig.probe.durations("power_off") if r.seconds > NON_BLOCKING_BOUND]
        assert not slow, f"{slow}; {rule('lock-power-off')}"
        rig.guest.wait_online(0)
        assert rig.machine.vcpus[2].state is VcpuState.POWERED_OFF
        assert rig.guest.cpu_on(2) == 0
        rig.guest.wait_online(2)

    def test_unrealize_on_eject_does_not_deadlock_with_a_vcpu_thread_calling_the_machine(
        self, vcpuhp_rig: RigFactory,
    ) -> None:
        rig = vcpuhp_rig("cpus=1,maxcpus=3", guest="scripted")
        before = Resources.measure(rig.probe)

        def under_the_lock() -> None:
            with rig.machine.lock:
                _start_cpu_behind_the_lock(rig, 2)
                rig.guest.system_reset()
                rig.machine.eject(2)

        finished, error = run_bounded(under_the_lock, rig.timeouts.deadlock)
        if not finished:
            rig.poisoned = True
        assert finished, (f"eject with the machine lock held did not return within "
                          f"{rig.timeouts.deadlock:.0f}s; {rule('lock-unrealize')}")
        assert error is None, error
        assert not rig.machine.vcpus[2].enabled
        after = Resources.measure(rig.probe)
        extra = {i: n for i, n in after.threads.items() if i not in before.threads}
        assert not extra, f"threads alive after the eject: {extra}; {rule('unrealize-joins')}"
        rig.guest.wait_online(0)
        rig.scripted_plug(2, "again")
