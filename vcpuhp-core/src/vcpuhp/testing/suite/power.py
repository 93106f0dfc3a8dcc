"""Pause and resume (QMP stop / cont), and system reset (PSCI SYSTEM_RESET)."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from vcpuhp import events as ev
from vcpuhp import memmap
from vcpuhp.backend import rule
from vcpuhp.testing.resources import Resources, settle_leaks
from vcpuhp.testing.rig import Rig
from vcpuhp.vcpu import VcpuState

RigFactory = Callable[..., Rig]
_WORK_COUNTERS = memmap.GUEST_STATUS_ADDR + 0x420
"""The bundled guest's per-CPU work counters (u64 each; see the guest's README)."""


def _work(rig: Rig, cpus: list[int]) -> list[int]:
    memory = rig.machine.memory
    assert memory is not None
    return [struct.unpack("<Q", memory.read(_WORK_COUNTERS + 8 * cpu, 8))[0] for cpu in cpus]


class TestPauseResume:
    """``pause`` holds every vCPU until ``resume``."""

    def test_a_paused_machine_runs_nothing_until_resumed(self, vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=2,maxcpus=4", maxcpus=2)
        rig.wait_online(frozenset({0, 1}))
        with rig.machine.events.recorder() as recorder:
            rig.machine.stop()
            assert rig.machine.query_status() == {"running": False, "status": "paused"}
            rig.machine.device_add(rig.machine.config.cpu_type, "c2", **{"core-id": 2})
            counters = _work(rig, [1]) if rig.executes else []
            time.sleep(rig.timeouts.quiet)
            assert rig.machine.vcpus[2].state is VcpuState.POWERED_OFF, \
                f"the guest onlined CPU 2 while the machine was paused; {rule('pause')}"
            if rig.executes:
                assert _work(rig, [1]) == counters, \
                    f"CPU 1 kept running while paused; {rule('pause')}"
            rig.machine.cont()
            rig.wait_state(2, VcpuState.ONLINE, "the guest handles the plug after cont")
            assert [n for n in recorder.names() if n in (ev.STOP, ev.RESUME)] == \
                [ev.STOP, ev.RESUME]
        rig.unplug("c2")

    def test_stop_and_cont_repeatedly_leak_nothing(self, vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=2,maxcpus=3", maxcpus=2)
        rig.wait_online(frozenset({0, 1}))
        before = Resources.measure(rig.probe)
        for _ in range(5):
            rig.machine.stop()
            rig.machine.stop()  # a second stop changes nothing
            rig.machine.cont()
        assert not settle_leaks(before, rig.probe)
        rig.cycle(2, "after-pauses")


class TestReset:
    """PSCI ``SYSTEM_RESET``: every CPU powered off, the boot CPU started again."""

    def test_reset_restarts_the_boot_cpu_and_keeps_plugged_cpus(
        self, vcpuhp_rig: RigFactory,
    ) -> None:
        rig = vcpuhp_rig("cpus=2,maxcpus=4", maxcpus=2)
        rig.wait_online(frozenset({0, 1}))
        rig.plug(2, "c2")
        with rig.machine.events.recorder() as recorder:
            assert rig.guest.system_reset() == 0
            recorder.wait_for(ev.RESET, timeout=rig.timeouts.settle)
            recorder.wait_for(ev.CPU_POWERED_ON, lambda e: e.data["cpu_index"] == 0,
                              timeout=rig.timeouts.settle)
        rig.wait_online(frozenset({0, 1}))
        assert rig.machine.cpu_masks().enabled == {0, 1, 2}
        assert rig.machine.vcpus[2].state is VcpuState.POWERED_OFF
        rig.unplug("c2")
        rig.cycle(3, "after-reset")
        rig.machine.check_invariants()

    def test_repeated_resets_leak_nothing(self, vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=2,maxcpus=3", maxcpus=2)
        rig.wait_online(frozenset({0, 1}))
        if rig.executes:
            rig.wait_until(rig.bundled_guest_idle, "the bundled guest to boot")
        before = Resources.measure(rig.probe)
        for _ in range(3):
            assert rig.guest.system_reset() == 0
            rig.wait_online(frozenset({0, 1}))
            if rig.executes:
                rig.wait_until(rig.bundled_guest_idle, "the bundled guest to boot again")
        problems = settle_leaks(before, rig.probe)
        assert not problems, f"after 3 resets: {'; '.join(problems)}"
