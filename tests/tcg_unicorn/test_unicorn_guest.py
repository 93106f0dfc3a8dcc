"""The bundled guest and psci-probe under Unicorn: the seed scenario from the guest's console."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from unicorn_testlib import SETTLE, console_has, read_i64, read_u64, require_unicorn, wait_until

require_unicorn()

from vcpuhp import events as ev  # noqa: E402
from vcpuhp import memmap  # noqa: E402
from vcpuhp.boot import bundled_image  # noqa: E402
from vcpuhp.machine import VirtMachine  # noqa: E402
from vcpuhp.psci import PsciFunction  # noqa: E402
from vcpuhp.vcpu import VcpuState  # noqa: E402

MakeMachine = Callable[..., VirtMachine]
STATUS = memmap.GUEST_STATUS_ADDR
STATUS_MAGIC = 0x47504856
BOOT_MASKS = "possible 0-5 present 0-5 enabled 0-3 online 0-1"
PLUGGED_MASKS = "possible 0-5 present 0-5 enabled 0-4 online 0-1,4"


def work(machine: VirtMachine, cpu: int) -> int:
    """The bundled guest's work counter of CPU ``cpu``."""
    return read_u64(machine, STATUS + 0x420 + 8 * cpu)


def advances(machine: VirtMachine, cpu: int, within: float = SETTLE) -> bool:
    start = work(machine, cpu)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if work(machine, cpu) > start:
            return True
        time.sleep(0.001)
    return False


@pytest.fixture
def seed(unicorn_machine: MakeMachine) -> VirtMachine:
    """``cpus=4,maxcpus=6``, guest ``maxcpus=2``, after the guest printed its boot masks."""
    machine = unicorn_machine("cpus=4,maxcpus=6", guest_cmdline="maxcpus=2")
    wait_until(console_has(machine, BOOT_MASKS), what=f"guest console {BOOT_MASKS!r}")
    return machine


def test_seed_scenario_as_the_guest_sees_it(seed: VirtMachine) -> None:
    machine = seed
    assert read_u64(machine, STATUS) & 0xFFFF_FFFF == STATUS_MAGIC
    assert machine.cpu_masks().online == {0, 1}
    assert advances(machine, 1)
    with machine.events.recorder() as recorder:
        machine.device_add("max-arm-cpu", "core4", **{"core-id": 4})
        recorder.wait_for(ev.CONSOLE, lambda e: e.data["line"] == PLUGGED_MASKS, timeout=SETTLE)
        assert machine.cpu_masks().online == {0, 1, 4}
        assert advances(machine, 4), "core 4's work counter does not advance"
        machine.device_del("core4")
        deleted = recorder.wait_for(ev.DEVICE_DELETED, timeout=SETTLE)
        assert deleted.data == {"device": "core4", "path": "/machine/peripheral/core4",
                                "cpu_index": 4}
        recorder.wait_for(ev.CONSOLE, lambda e: e.data["line"] == BOOT_MASKS, timeout=SETTLE)
    assert machine.console[-1] == BOOT_MASKS
    assert machine.vcpus[4].state is VcpuState.UNPLUGGED
    stopped_at = work(machine, 4)
    time.sleep(0.05)
    assert work(machine, 4) == stopped_at, "an ejected CPU must not run"
    machine.check_invariants()


def test_replug_after_unplug_runs_the_cpu_again(seed: VirtMachine) -> None:
    machine = seed
    for round_ in range(3):
        with machine.events.recorder() as recorder:
            machine.device_add("max-arm-cpu", f"c{round_}", **{"core-id": 5})
            recorder.wait_for(ev.CPU_POWERED_ON, lambda e: e.data["cpu_index"] == 5,
                              timeout=SETTLE)
            assert advances(machine, 5)
            machine.device_del(f"c{round_}")
            recorder.wait_for(ev.DEVICE_DELETED, timeout=SETTLE)
    stats = machine.backend_stats()
    assert stats["total_registrations"] - stats["total_unregistrations"] == 4
    assert stats["peak"] == 5


def test_psci_probe_sees_the_hotplug_policy(unicorn_machine: MakeMachine) -> None:
    machine = unicorn_machine("cpus=2,maxcpus=4", kernel=bundled_image("psci-probe.elf"))
    wait_until(console_has(machine, "psci-probe done"), what="psci-probe to finish")
    results = [read_i64(machine, STATUS + 8 + 8 * n) for n in range(8)]
    assert read_u64(machine, STATUS + 4) & 0xFFFF_FFFF == 8
    version, on, again, unknown, disabled, aff_on, aff_disabled, bad_fn = results
    assert version == 0x10001
    assert on == 0
    assert again == -4, "ALREADY_ON"
    assert unknown == -2, "INVALID_PARAMETERS"
    assert disabled == -3, "DENIED for a CPU that is not enabled"
    assert (aff_on, aff_disabled) == (0, 1)
    assert bad_fn == -1
    assert "psci cpu_on_disabled -> -3" in machine.console


def test_pause_freezes_every_vcpu_until_resume(seed: VirtMachine) -> None:
    machine = seed
    assert advances(machine, 1)
    machine.stop()
    frozen = work(machine, 1)
    time.sleep(0.1)
    assert work(machine, 1) == frozen
    assert machine.query_status()["status"] == "paused"
    machine.cont()
    assert advances(machine, 1)


def test_pause_holds_a_cpu_plugged_while_paused(seed: VirtMachine) -> None:
    machine = seed
    machine.stop()
    machine.device_add("max-arm-cpu", "core4", **{"core-id": 4})
    time.sleep(0.1)
    assert machine.vcpus[4].state is VcpuState.POWERED_OFF  # the guest has not run
    with machine.events.recorder() as recorder:
        machine.cont()
        recorder.wait_for(ev.CONSOLE, lambda e: e.data["line"] == PLUGGED_MASKS, timeout=SETTLE)


def test_system_reset_restarts_the_guest(seed: VirtMachine) -> None:
    machine = seed
    with machine.events.recorder() as recorder:
        assert machine.psci_call(0, PsciFunction.SYSTEM_RESET) == 0
        recorder.wait_for(ev.RESET, timeout=SETTLE)
        recorder.wait_for(ev.CONSOLE, lambda e: e.data["line"] == BOOT_MASKS, timeout=SETTLE)
    assert machine.console.count(BOOT_MASKS) == 2
    assert machine.cpu_masks().online == {0, 1}
    assert advances(machine, 1)
    machine.check_invariants()
