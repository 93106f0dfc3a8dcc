"""The bundled guest on KVM: the seed scenario as the guest's own console and status page show it.

Collected only with ``--vcpuhp-backend=kvm`` (see ``conftest.py``). The checks
read the guest's documented interface (``vcpuhp-core/guest/README.md``): the
masks line it prints after boot and after every hotplug scan, the status
page's magic and per-CPU work counters, and psci-probe's results; never how
fast it runs. Plug and unplug reuse the parked vCPU fds: nothing is created
after realize and no thread is left behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from vcpuhp import events as ev
from vcpuhp import memmap
from vcpuhp.boot import bundled_image
from vcpuhp.gic import GICD_ICFGR
from vcpuhp.machine import VirtMachine
from vcpuhp.psci import PsciFunction
from vcpuhp.vcpu import VcpuState
from vcpuhp_kvm import KvmBackend
from vcpuhp_kvm.runner import KvmVcpu

MakeMachine = Callable[..., VirtMachine]
SETTLE = 180.0
"""Seconds a test waits for the guest before it fails (generous: KVM inside TCG)."""
STATUS = memmap.GUEST_STATUS_ADDR
STATUS_MAGIC = 0x47504856
WORK_COUNTERS = STATUS + 0x420
BOOT_MASKS = "possible 0-5 present 0-5 enabled 0-3 online 0-1"
PLUGGED_MASKS = "possible 0-5 present 0-5 enabled 0-4 online 0-1,4"
CPU = "host-arm-cpu"
CYCLES = 200


def u64(machine: VirtMachine, addr: int) -> int:
    assert machine.memory is not None
    return machine.memory.read_int(addr, 8)


def i64(machine: VirtMachine, addr: int) -> int:
    value = u64(machine, addr)
    return value - (1 << 64) if value >> 63 else value


def work(machine: VirtMachine, cpu: int) -> int:
    """CPU ``cpu``'s work counter on the guest's status page."""
    return u64(machine, WORK_COUNTERS + 8 * cpu)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = SETTLE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def advances(machine: VirtMachine, cpu: int) -> bool:
    """Whether CPU ``cpu``'s work counter moves on within :data:`SETTLE`."""
    start = work(machine, cpu)
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        if work(machine, cpu) != start:
            return True
        time.sleep(0.01)
    return False


def printed(machine: VirtMachine, line: str) -> Callable[[], bool]:
    return lambda: line in machine.console


def about(key: str, value: object) -> Callable[[ev.MachineEvent], bool]:
    """An event predicate: the event's ``key`` is ``value``."""
    return lambda event: bool(event.data[key] == value)


def vcpu_fds(machine: VirtMachine) -> dict[int, tuple[int, int]]:
    """Every possible CPU's backend vCPU object and fd number, by CPU index."""
    backend = machine.backend
    assert isinstance(backend, KvmBackend)
    return {index: (id(vcpu), vcpu.fd.fd) for index, vcpu in backend.vcpus.items()}


@pytest.fixture
def seed(kvm_machine: MakeMachine) -> VirtMachine:
    """``cpus=4,maxcpus=6``, guest ``maxcpus=2``, after the guest printed its boot masks."""
    machine = kvm_machine("cpus=4,maxcpus=6", guest_cmdline="maxcpus=2")
    wait_until(printed(machine, BOOT_MASKS), f"the guest's boot masks {BOOT_MASKS!r}")
    return machine


def test_seed_scenario_as_the_guest_sees_it(seed: VirtMachine) -> None:
    machine = seed
    assert u64(machine, STATUS) & 0xFFFF_FFFF == STATUS_MAGIC
    assert machine.cpu_masks().online == {0, 1}
    assert advances(machine, 1)
    parked = machine.parked.handles()[machine.topology.slots[4].arch_id]
    with machine.events.recorder() as recorder:
        machine.device_add(CPU, "core4", **{"core-id": 4})
        recorder.wait_for(ev.CONSOLE, lambda e: e.data["line"] == PLUGGED_MASKS, timeout=SETTLE)
        assert machine.vcpus[4].handle is parked  # the parked vCPU, taken back
        assert machine.cpu_masks().online == {0, 1, 4}
        assert advances(machine, 4), "core 4's work counter does not advance"
        machine.device_del("core4")
        deleted = recorder.wait_for(ev.DEVICE_DELETED, timeout=SETTLE)
        assert deleted.data == {"device": "core4", "path": "/machine/peripheral/core4",
                                "cpu_index": 4}
        recorder.wait_for(ev.CONSOLE, lambda e: e.data["line"] == BOOT_MASKS, timeout=SETTLE)
    assert machine.console[-1] == BOOT_MASKS
    assert machine.vcpus[4].state is VcpuState.UNPLUGGED
    assert machine.parked.handles()[machine.topology.slots[4].arch_id] is parked
    assert isinstance(parked, KvmVcpu)
    assert parked.thread is None
    stopped_at = work(machine, 4)
    time.sleep(0.2)
    assert work(machine, 4) == stopped_at, "an ejected CPU must not run"
    machine.check_invariants()


def test_a_guest_cpu_on_of_a_disabled_cpu_is_denied(kvm_machine: MakeMachine) -> None:
    machine = kvm_machine("cpus=2,maxcpus=4", kernel=bundled_image("psci-probe.elf"))
    wait_until(printed(machine, "psci-probe done"), "psci-probe to finish")
    assert u64(machine, STATUS + 4) & 0xFFFF_FFFF == 8
    results = [i64(machine, STATUS + 8 + 8 * n) for n in range(8)]
    version, on, again, unknown, disabled, aff_on, aff_disabled, bad_fn = results
    assert version == 0x10001
    assert (on, again, unknown) == (0, -4, -2)  # SUCCESS, ALREADY_ON, INVALID_PARAMETERS
    assert disabled == -3, "DENIED for a CPU that is not enabled"
    assert (aff_on, aff_disabled) == (0, 1)
    assert bad_fn == -1
    assert "psci cpu_on_disabled -> -3" in machine.console
    assert machine.vcpus[3].state is VcpuState.UNPLUGGED


def test_plug_unplug_cycles_reuse_the_parked_vcpus_and_leave_no_thread(
    kvm_machine: MakeMachine,
) -> None:
    machine = kvm_machine("cpus=2,maxcpus=4", guest_cmdline="maxcpus=2")
    boot_masks = "possible 0-3 present 0-3 enabled 0-1 online 0-1"
    wait_until(printed(machine, boot_masks), "the guest's boot masks")
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
    wait_until(lambda: machine.console[-1] == boot_masks, "the guest's masks after the cycles")
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
    wait_until(printed(machine, boot_masks), "the guest's boot masks")
    backend = machine.backend
    assert isinstance(backend, KvmBackend) and backend.vgic is not None
    assert backend.vgic.redistributor_region(0) == (memmap.GICR_REGION0.base, 123)
    assert backend.vgic.redistributor_region(1) == (memmap.GICR_REGION_HIGH.base, 77)
    stats = machine.backend_stats()
    assert (stats["vcpu_fds"], stats["total_vcpus_created"], stats["parked"]) == (200, 200, 198)
    assert stats["ipa_bits"] == 39
    with machine.events.recorder() as recorder:
        machine.device_add(CPU, "core150", **{"core-id": 150})
        recorder.wait_for(ev.CONSOLE, lambda e: e.data["line"] == plugged_masks, timeout=SETTLE)
        assert advances(machine, 150), "CPU 150's work counter does not advance"
        machine.device_del("core150")
        recorder.wait_for(ev.DEVICE_DELETED, timeout=SETTLE)
        recorder.wait_for(ev.CONSOLE, lambda e: e.data["line"] == boot_masks, timeout=SETTLE)
    assert machine.backend_stats()["total_vcpus_created"] == 200
    machine.check_invariants()


def test_pause_keeps_every_vcpu_out_of_the_guest_until_resume(seed: VirtMachine) -> None:
    machine = seed
    assert advances(machine, 1)
    machine.stop()
    frozen = work(machine, 1)
    time.sleep(0.2)
    assert work(machine, 1) == frozen
    assert machine.query_status()["status"] == "paused"
    machine.cont()
    assert advances(machine, 1)


def test_a_cpu_plugged_while_paused_starts_only_after_resume(seed: VirtMachine) -> None:
    machine = seed
    machine.stop()
    machine.device_add(CPU, "core4", **{"core-id": 4})
    time.sleep(0.2)
    assert machine.vcpus[4].state is VcpuState.POWERED_OFF  # the guest has not run
    with machine.events.recorder() as recorder:
        machine.cont()
        recorder.wait_for(ev.CONSOLE, lambda e: e.data["line"] == PLUGGED_MASKS, timeout=SETTLE)


def test_the_uart_interrupt_is_a_level_line_in_the_vgic(seed: VirtMachine) -> None:
    machine = seed
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
