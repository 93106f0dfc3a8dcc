"""The bundled guest and psci-probe under Unicorn: the seed scenario from the guest's console.

The scenarios are shared with the kvm backend's tests (``guest_scenarios``);
this module adds what only tcg-unicorn shows (its translation contexts).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from unicorn_testlib import SETTLE, require_unicorn

import guest_scenarios as scenario
from guest_scenarios import BundledGuest

require_unicorn()

from vcpuhp import events as ev  # noqa: E402
from vcpuhp.machine import VirtMachine  # noqa: E402

MakeMachine = Callable[..., VirtMachine]


@pytest.fixture
def seed(unicorn_machine: MakeMachine) -> BundledGuest:
    """``cpus=4,maxcpus=6``, guest ``maxcpus=2``, after the guest printed its boot masks."""
    return scenario.boot_seed(unicorn_machine, SETTLE)


def test_seed_scenario_as_the_guest_sees_it(seed: BundledGuest) -> None:
    scenario.seed_scenario(seed)


def test_replug_after_unplug_runs_the_cpu_again(seed: BundledGuest) -> None:
    machine = seed.machine
    for round_ in range(3):
        with machine.events.recorder() as recorder:
            machine.device_add("max-arm-cpu", f"c{round_}", **{"core-id": 5})
            recorder.wait_for(ev.CPU_POWERED_ON, lambda e: e.data["cpu_index"] == 5,
                              timeout=SETTLE)
            assert seed.advances(5)
            machine.device_del(f"c{round_}")
            recorder.wait_for(ev.DEVICE_DELETED, timeout=SETTLE)
    stats = machine.backend_stats()
    assert stats["total_registrations"] - stats["total_unregistrations"] == 4
    assert stats["peak"] == 5


def test_psci_probe_sees_the_hotplug_policy(unicorn_machine: MakeMachine) -> None:
    scenario.psci_probe(unicorn_machine, SETTLE)


def test_pause_freezes_every_vcpu_until_resume(seed: BundledGuest) -> None:
    scenario.pause_freezes_every_vcpu(seed)


def test_pause_holds_a_cpu_plugged_while_paused(seed: BundledGuest) -> None:
    scenario.cpu_plugged_while_paused_starts_after_resume(seed)


def test_system_reset_restarts_the_guest(seed: BundledGuest) -> None:
    scenario.system_reset_restarts_the_guest(seed)
