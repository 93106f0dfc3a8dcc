"""The bundled guest on KVM: the seed scenario as the guest's own console and status page show it.

Collected only with ``--vcpuhp-backend=kvm`` (see ``conftest.py``). The
scenarios are shared with tcg-unicorn's tests (``guest_scenarios``); this
module adds what only KVM shows: plug and unplug reuse the parked vCPU fds
(nothing is created after realize and no thread is left behind), two
redistributor regions for 200 CPUs, the UART's level line in the vGIC.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

import guest_scenarios as scenario
from guest_scenarios import BundledGuest
from vcpuhp import events as ev
from vcpuhp import memmap
from vcpuhp.gic import GICD_ICFGR
from vcpuhp.machine import VirtMachine
from vcpuhp.vcpu import VcpuState
from vcpuhp_kvm import KvmBackend
from vcpuhp_kvm.runner import KvmVcpu

MakeMachine = Callable[..., VirtMachine]
SETTLE = 180.0
"""Seconds a test waits for the guest before it fails (generous: KVM inside TCG)."""
CPU = "host-arm-cpu"
CYCLES = 200


def about(key: str, value: object) -> Callable[[ev.MachineEvent], bool]:
    """An event predicate: the event's ``key`` is ``value``."""
    return lambda event: bool(event.data[key] == value)


def vcpu_fds(machine: VirtMachine) -> dict[int, tuple[int, int]]:
    """Every possible CPU's backend vCPU object and fd number, by CPU index."""
    backend = machine.backend
    assert isinstance(backend, KvmBackend)
    return {index: (id(vcpu), vcpu.fd.fd) for index, vcpu in backend.vcpus.items()}


@pytest.fixture
def seed(kvm_machine: MakeMachine) -> BundledGuest:
    """``cpus=4,maxcpus=6``, guest ``maxcpus=2``, after the guest printed its boot masks."""
    return scenario.boot_seed(kvm_machine, SETTLE)


def test_seed_scenario_as_the_guest_sees_it(seed: BundledGuest) -> None:
    machine = seed.machine
    arch_id = machine.topology.slots[4].arch_id
    parked = machine.parked.handles()[arch_id]

    def the_parked_vcpu_is_taken_back() -> None:
        assert machine.vcpus[4].handle is parked

    scenario.seed_scenario(seed, when_plugged=the_parked_vcpu_is_taken_back)
    assert machine.parked.handles()[arch_id] is parked
    assert isinstance(parked, KvmVcpu)
    assert parked.thread is None


def test_a_guest_cpu_on_of_a_disabled_cpu_is_denied(kvm_machine: MakeMachine) -> None:
    guest = scenario.psci_probe(kvm_machine, SETTLE)
    assert guest.machine.vcpus[3].state is VcpuState.UNPLUGGED


def test_plug_unplug_cycles_reuse_the_parked_vcpus_and_leave_no_thread(
    kvm_machine: MakeMachine,
) -> None:
    machine = kvm_machine("cpus=2,maxcpus=4", guest_cmdline="maxcpus=2")
    boot_masks = "possible 0-3 present 0-3 enabled 0-1 online 0-1"
    guest = BundledGuest(machine, SETTLE)
    guest.wait_printed(boot_masks)
    fds = vcpu_fds(machine)
    threads = threading.active_count()
    before = machine.backend_stats()
    assert (before["vcpu_fds"], before["threads"], before["total_vcpus_created"]) == (4, 2, 4)
    with machine.events.recorder() as recorder:
        for n in range(CYCLES):
            index = 2 + n % 2
            device = f"cpu{n}"
            machine.device_add(CPU, device, **{"core-id": index})
            recorder.wait_for(ev.CPU_POWERED_ON, about("cpu_index", index), timeout=SETTLE)
            machine.device_del(device)
            recorder.wait_for(ev.DEVICE_DELETED, about("device", device), timeout=SETTLE)
    scenario.wait_until(lambda: machine.console[-1] == boot_masks, SETTLE,
                        "the guest's masks after the cycles")
    after = machine.backend_stats()
    assert vcpu_fds(machine) == fds
    assert (after["vcpu_fds"], after["threads"], after["total_vcpus_created"]) == (4, 2, 4)
    assert after["total_threads_started"] - before["total_threads_started"] == CYCLES
    assert after["total_threads_joined"] - before["total_threads_joined"] == CYCLES
    assert after["total_faults"] == 0
    assert threading.active_count() == threads
    machine.check_invariants()


def test_200_cpus_use_two_redistributor_regions_and_a_cpu_of_the_second_runs(
    kvm_machine: MakeMachine,
) -> None:
    machine = kvm_machine("cpus=2,maxcpus=200", guest_cmdline="maxcpus=2")
    boot_masks = "possible 0-199 present 0-199 enabled 0-1 online 0-1"
    plugged_masks = "possible 0-199 present 0-199 enabled 0-1,150 online 0-1,150"
    guest = BundledGuest(machine, SETTLE)
    guest.wait_printed(boot_masks)
    backend = machine.backend
    assert isinstance(backend, KvmBackend) and backend.vgic is not None
    assert backend.vgic.redistributor_region(0) == (memmap.GICR_REGION0.base, 123)
    assert backend.vgic.redistributor_region(1) == (memmap.GICR_REGION_HIGH.base, 77)
    stats = machine.backend_stats()
    assert (stats["vcpu_fds"], stats["total_vcpus_created"], stats["parked"]) == (200, 200, 198)
    assert stats["ipa_bits"] == 39
    with machine.events.recorder() as recorder:
        machine.device_add(CPU, "core150", **{"core-id": 150})
        guest.next_line(recorder, plugged_masks)
        assert guest.advances(150), "CPU 150's work counter does not advance"
        machine.device_del("core150")
        recorder.wait_for(ev.DEVICE_DELETED, timeout=SETTLE)
        guest.next_line(recorder, boot_masks)
    assert machine.backend_stats()["total_vcpus_created"] == 200
    machine.check_invariants()


def test_pause_keeps_every_vcpu_out_of_the_guest_until_resume(seed: BundledGuest) -> None:
    scenario.pause_freezes_every_vcpu(seed)


def test_a_cpu_plugged_while_paused_starts_only_after_resume(seed: BundledGuest) -> None:
    scenario.cpu_plugged_while_paused_starts_after_resume(seed)


def test_the_uart_interrupt_is_a_level_line_in_the_vgic(seed: BundledGuest) -> None:
    machine = seed.machine
    backend = machine.backend
    assert isinstance(backend, KvmBackend) and backend.vgic is not None
    vgic = backend.vgic
    uart = memmap.spi_intid(memmap.UART_SPI)
    machine.stop()  # KVM takes user-space vGIC register accesses only while no vCPU runs
    # configure it level-sensitive, as a driver following the DSDT's _CRS does
    icfgr, edge = GICD_ICFGR + 4 * (uart // 16), 1 << (2 * (uart % 16) + 1)
    vgic.set_distributor_register(icfgr, vgic.distributor_register(icfgr) & ~edge)
    machine.irqchip.set_spi(memmap.UART_SPI, True)
    machine.irqchip.set_spi(memmap.UART_SPI, True)
    assert vgic.spi_line_level(uart)
    machine.irqchip.set_spi(memmap.UART_SPI, False)
    assert not vgic.spi_line_level(uart)
    assert not vgic.spi_pending(uart)
    machine.cont()


def test_system_reset_restarts_the_guest(seed: BundledGuest) -> None:
    scenario.system_reset_restarts_the_guest(seed)
