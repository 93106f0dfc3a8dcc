"""The native KVM layer on a real arm64 KVM (inside the emulated arm64 host, or on arm64 metal).

Collected only with ``--vcpuhp-backend=kvm`` (see ``conftest.py``). Each test
builds its own VM in the order KVM imposes (RAM, SMCCC filter, every vCPU,
vGIC, ``KVM_ARM_VCPU_INIT``) and drives a hand-assembled guest whose exits it
asserts one by one.
"""

from __future__ import annotations

import errno
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from vcpuhp import memmap
from vcpuhp.errors import ConfigError
from vcpuhp.gic import GICD_ICFGR, GICD_ISPENDR, NUM_IRQS, layout_redistributors
from vcpuhp.memory import GuestMemory
from vcpuhp.topology import SmpConfig, Topology
from vcpuhp_kvm import (
    KICK_SIGNAL,
    HostSupport,
    Hypercall,
    Interrupted,
    Kvm,
    KvmError,
    MmioRead,
    MmioWrite,
    SystemEvent,
    VcpuExit,
    VcpuFd,
    VcpuInit,
    Vgicv3,
    Vm,
    forward_psci_to_user,
    regs,
    uapi,
)
from vcpuhp_kvm import vgic as vgic_module

RAM_SIZE = 2 * 1024 * 1024
ENTRY = memmap.RAM_BASE
RESULTS = memmap.RAM_BASE + 0x1000
"""Where the guest stores what it saw (x0 after CPU_ON, the UART read, x5)."""
CPU_ON_64 = 0xC400_0003
SYSTEM_OFF = 0x8400_0008
PSCI_DENIED = -3
UARTFR = 0x18
UARTFR_TXFE_RXFE = 0x90
X5_FROM_THE_VMM = 0x1234_5678_9ABC_DEF0
BOUND = 60.0
"""Seconds a test waits for a guest or a thread before failing (generous: TCG under TCG)."""

# Hand-assembled A64 (aarch64-linux-gnu-as would emit the same words).
PSCI_UART_PROGRAM = [
    0xD2800060,  # 0x00 movz x0, #0x3
    0xF2B88000,  # 0x04 movk x0, #0xc400, lsl #16     x0 = CPU_ON (SMC64)
    0xD2800021,  # 0x08 movz x1, #1                   target MPIDR affinity 1
    0xD2840002,  # 0x0c movz x2, #0x2000
    0xF2A80002,  # 0x10 movk x2, #0x4000, lsl #16     entry 0x40002000
    0xD2800843,  # 0x14 movz x3, #0x42                context id
    0xD4000002,  # 0x18 hvc #0
    0xD2820004,  # 0x1c movz x4, #0x1000
    0xF2A80004,  # 0x20 movk x4, #0x4000, lsl #16     x4 = RESULTS
    0xF9000080,  # 0x24 str x0, [x4]                  CPU_ON's return value
    0xD2800002,  # 0x28 movz x2, #0
    0xF2A12002,  # 0x2c movk x2, #0x900, lsl #16      x2 = PL011
    0x52800821,  # 0x30 movz w1, #0x41                'A'
    0x39000041,  # 0x34 strb w1, [x2]                 UARTDR
    0xB9401843,  # 0x38 ldr w3, [x2, #0x18]           UARTFR
    0xF9000483,  # 0x3c str x3, [x4, #8]
    0xF9000885,  # 0x40 str x5, [x4, #16]             set by the VMM before the run
    0xD2800100,  # 0x44 movz x0, #0x8
    0xF2B08000,  # 0x48 movk x0, #0x8400, lsl #16     x0 = SYSTEM_OFF
    0xD4000002,  # 0x4c hvc #0
    0x14000000,  # 0x50 b .
]
SYSTEM_OFF_OFFSET = 0x44
SYSTEM_OFF_PROGRAM = PSCI_UART_PROGRAM[SYSTEM_OFF_OFFSET // 4 :]
SPIN_PROGRAM = [0x14000000]  # b .


def program_bytes(words: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(words)}I", *words)


@dataclass
class Machine:
    """A VM, its RAM and vCPUs, built in KVM's order; closed at teardown."""

    vm: Vm
    ram: GuestMemory
    vcpus: list[VcpuFd] = field(default_factory=list)
    vgic: Vgicv3 | None = None
    init: VcpuInit | None = None
    """What every vCPU was initialised with (``POWER_OFF`` added for all but vCPU 0)."""

    def load(self, words: Sequence[int], addr: int = ENTRY) -> None:
        self.ram.write(addr, program_bytes(words))

    def start(self, vcpu: VcpuFd, pc: int = ENTRY) -> None:
        vcpu.set_one_reg(regs.PC, pc)
        vcpu.set_one_reg(regs.PSTATE, regs.PSTATE_EL1H_DAIF_MASKED)

    def close(self) -> None:
        for vcpu in self.vcpus:
            vcpu.close()
        if self.vgic is not None:
            self.vgic.close()
        self.vm.close()
        self.ram.close()


@pytest.fixture
def machine(kvm: Kvm) -> Iterator[Callable[..., Machine]]:
    """Factory: ``machine(possible, filter=True, vgic=True)`` -> VM with RAM, vCPUs, vGIC, init."""
    made: list[Machine] = []

    def make(possible: int = 2, *, psci_filter: bool = True, vgic: bool = True) -> Machine:
        vm = kvm.create_vm()
        ram = GuestMemory(RAM_SIZE)
        built = Machine(vm, ram)
        made.append(built)
        vm.set_user_memory_region(0, memmap.RAM_BASE, RAM_SIZE, ram.host_address)
        if psci_filter:
            forward_psci_to_user(vm)
        built.vcpus = [vm.create_vcpu(index) for index in range(possible)]
        if vgic:
            built.vgic = Vgicv3.create(vm, memmap.GICD.base, layout_redistributors(possible),
                                       NUM_IRQS)
            built.vgic.initialize()
        target = vm.arm_preferred_target().with_features(uapi.KVM_ARM_VCPU_PSCI_0_2)
        built.init = target
        slots = Topology(SmpConfig.parse(f"cpus=1,maxcpus={possible}")).slots
        for vcpu, slot in zip(built.vcpus, slots, strict=True):
            off = (uapi.KVM_ARM_VCPU_POWER_OFF,) if slot.index else ()
            vcpu.init(target.with_features(*off))
            vcpu.set_one_reg(regs.MPIDR_EL1, slot.mpidr)
        return built

    yield make
    for built in made:
        built.close()


def run_until_exit(vcpu: VcpuFd) -> VcpuExit:
    """``KVM_RUN`` until an exit that is not a stray ``Interrupted``."""
    while True:
        result = vcpu.run()
        if not isinstance(result, Interrupted):
            return result


def test_the_probe_says_kvm_is_usable_and_names_the_vcpu_limit(kvm_host: HostSupport) -> None:
    print(f"host kernel {kvm_host.kernel}, KVM_CAP_MAX_VCPUS {kvm_host.max_vcpus}, "
          f"KVM_CAP_MAX_VCPU_ID {kvm_host.max_vcpu_id}, IPA {kvm_host.max_ipa_bits} bits")
    assert kvm_host.viability.viable
    assert kvm_host.max_vcpus >= 200
    kvm_host.check_maxcpus(kvm_host.max_vcpus)
    with pytest.raises(ConfigError, match=f"at most {kvm_host.max_vcpus}"):
        kvm_host.check_maxcpus(kvm_host.max_vcpus + 1)


def test_every_vcpu_is_initialised_with_its_mpidr_and_only_the_boot_cpu_powered_on(
    machine: Callable[..., Machine],
) -> None:
    built = machine(4)
    slots = Topology(SmpConfig.parse("cpus=1,maxcpus=4")).slots
    assert [vcpu.get_one_reg(regs.MPIDR_EL1) for vcpu in built.vcpus] == [
        slot.mpidr for slot in slots
    ]
    assert [vcpu.get_mp_state() for vcpu in built.vcpus] == [
        uapi.KVM_MP_STATE_RUNNABLE] + [uapi.KVM_MP_STATE_STOPPED] * 3
    assert regs.MPIDR_EL1 in built.vcpus[0].get_reg_list()
    assert regs.PC in built.vcpus[0].get_reg_list()


def test_vcpu_init_again_resets_the_vcpu_and_powers_it_on(machine: Callable[..., Machine]) -> None:
    built = machine(2)
    assert built.init is not None
    second = built.vcpus[1]
    second.set_one_reg(regs.PC, ENTRY)
    second.set_one_reg(regs.MPIDR_EL1, 0x8000_0105)
    second.init(built.init)  # as for a PSCI CPU_ON: no POWER_OFF this time
    assert second.get_mp_state() == uapi.KVM_MP_STATE_RUNNABLE
    assert second.get_one_reg(regs.PC) == 0
    # the MPIDR user space set survives the reset (Linux 6.12); the backend sets it again anyway
    assert second.get_one_reg(regs.MPIDR_EL1) == 0x8000_0105


def test_one_redistributor_region_then_no_vcpu_after_ctrl_init(
    machine: Callable[..., Machine],
) -> None:
    built = machine(8)
    assert built.vgic is not None
    assert built.vgic.distributor_base() == memmap.GICD.base
    assert built.vgic.redistributor_region(0) == (memmap.GICR_REGION0.base, 8)
    assert built.vgic.nr_irqs() == NUM_IRQS
    with pytest.raises(KvmError) as refused:
        built.vm.create_vcpu(8)
    assert refused.value.errno == errno.EBUSY
    assert "KVM_CREATE_VCPU failed: EBUSY" in str(refused.value)


def test_two_redistributor_regions_for_200_cpus_and_a_cpu_of_the_second_runs(
    machine: Callable[..., Machine],
) -> None:
    built = machine(200)
    assert built.vgic is not None
    assert built.vgic.redistributor_region(0) == (memmap.GICR_REGION0.base, 123)
    assert built.vgic.redistributor_region(1) == (memmap.GICR_REGION_HIGH.base, 77)
    last = built.vcpus[199]
    built.load(PSCI_UART_PROGRAM)
    last.init(built.vm.arm_preferred_target().with_features(uapi.KVM_ARM_VCPU_PSCI_0_2))
    mpidr = Topology(SmpConfig.parse("cpus=1,maxcpus=200")).slots[199].mpidr
    last.set_one_reg(regs.MPIDR_EL1, mpidr)
    built.start(last, ENTRY + SYSTEM_OFF_OFFSET)
    exit_ = run_until_exit(last)
    assert isinstance(exit_, Hypercall)
    assert exit_.nr == SYSTEM_OFF


def test_the_guest_exits_for_psci_and_the_uart_and_sees_the_vmms_answers(
    machine: Callable[..., Machine],
) -> None:
    built = machine(2)
    boot = built.vcpus[0]
    built.load(PSCI_UART_PROGRAM)
    built.start(boot)
    boot.set_one_reg(regs.x(5), X5_FROM_THE_VMM)

    cpu_on = run_until_exit(boot)
    assert isinstance(cpu_on, Hypercall)
    assert (cpu_on.nr, cpu_on.args, cpu_on.smc) == (CPU_ON_64, (1, 0x4000_2000, 0x42), False)
    cpu_on.set_return(PSCI_DENIED)

    uart_write = run_until_exit(boot)
    assert uart_write == MmioWrite(memmap.UART.base, 1, ord("A"))

    uart_read = run_until_exit(boot)
    assert isinstance(uart_read, MmioRead)
    assert (uart_read.addr, uart_read.size) == (memmap.UART.base + UARTFR, 4)
    uart_read.complete(UARTFR_TXFE_RXFE)

    system_off = run_until_exit(boot)
    assert isinstance(system_off, Hypercall)
    assert system_off.nr == SYSTEM_OFF
    assert built.ram.read_int(RESULTS, 8) == PSCI_DENIED & 0xFFFF_FFFF_FFFF_FFFF
    assert built.ram.read_int(RESULTS + 8, 8) == UARTFR_TXFE_RXFE
    assert built.ram.read_int(RESULTS + 16, 8) == X5_FROM_THE_VMM


def test_without_the_filter_kvm_answers_psci_itself(machine: Callable[..., Machine]) -> None:
    built = machine(1, psci_filter=False)
    boot = built.vcpus[0]
    built.load(PSCI_UART_PROGRAM)
    built.start(boot, ENTRY + SYSTEM_OFF_OFFSET)
    exit_ = run_until_exit(boot)
    assert isinstance(exit_, SystemEvent)
    assert exit_.shutdown


def test_the_filter_refuses_the_arm_architecture_range_and_overlaps(kvm: Kvm) -> None:
    with kvm.create_vm() as vm:
        assert vm.has_smccc_filter()
        with pytest.raises(KvmError) as architecture:
            vm.set_smccc_filter(0x8000_0000, 1, uapi.KVM_SMCCC_FILTER_FWD_TO_USER)
        assert architecture.value.errno == errno.EEXIST  # KVM reserves that range
        forward_psci_to_user(vm)
        with pytest.raises(KvmError) as overlap:
            vm.set_smccc_filter(CPU_ON_64, 1, uapi.KVM_SMCCC_FILTER_DENY)
        assert overlap.value.errno == errno.EEXIST


class Runner:
    """Runs a vCPU on its own thread until ``KVM_RUN`` returns once."""

    def __init__(self, vcpu: VcpuFd) -> None:
        self.vcpu = vcpu
        self.result: VcpuExit | BaseException | None = None
        self.entered = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"vcpu-{vcpu.vcpu_id}")

    def _run(self) -> None:
        self.entered.set()
        try:
            self.result = self.vcpu.run()
        except BaseException as exc:
            self.result = exc

    def start(self) -> Runner:
        self.thread.start()
        assert self.entered.wait(BOUND)
        return self

    def join(self) -> VcpuExit | BaseException | None:
        self.thread.join(BOUND)
        assert not self.thread.is_alive(), "KVM_RUN was not interrupted"
        return self.result


def spinning(machine: Callable[..., Machine]) -> tuple[Machine, VcpuFd]:
    built = machine(1)
    built.load(SPIN_PROGRAM)
    built.load(SYSTEM_OFF_PROGRAM, ENTRY + 0x100)
    boot = built.vcpus[0]
    built.start(boot)
    return built, boot


def test_a_signal_interrupts_kvm_run_in_another_thread(machine: Callable[..., Machine]) -> None:
    _, boot = spinning(machine)
    runner = Runner(boot).start()
    deadline = time.monotonic() + BOUND
    # no immediate_exit here: only the signal can end a guest spinning in `b .`
    while runner.thread.is_alive() and time.monotonic() < deadline:
        signal.pthread_kill(runner.thread.ident or 0, KICK_SIGNAL)
        runner.thread.join(0.05)
    assert isinstance(runner.join(), Interrupted)


def test_kick_stops_a_spinning_guest_which_then_resumes(machine: Callable[..., Machine]) -> None:
    built, boot = spinning(machine)
    runner = Runner(boot).start()
    boot.kick()
    assert isinstance(runner.join(), Interrupted)
    assert not boot.immediate_exit  # cleared by the vCPU thread
    built.start(boot, ENTRY + 0x100)
    resumed = run_until_exit(boot)
    assert isinstance(resumed, Hypercall)
    assert resumed.nr == SYSTEM_OFF


def test_immediate_exit_returns_before_entering_the_guest(machine: Callable[..., Machine]) -> None:
    _, boot = spinning(machine)
    boot.immediate_exit = True
    assert isinstance(boot.run(), Interrupted)
    assert not boot.immediate_exit


def icfgr_edge_bit(intid: int) -> tuple[int, int]:
    """``(GICD_ICFGR<n> offset, mask of intid's edge bit)``: 2 bits per INTID, 1 = edge."""
    return GICD_ICFGR + 4 * (intid // 16), 1 << (2 * (intid % 16) + 1)


def test_an_spi_raised_with_irq_line_latches_as_edge_until_the_guest_makes_it_level(
    machine: Callable[..., Machine],
) -> None:
    built = machine(2)
    vgic = built.vgic
    assert vgic is not None
    uart = memmap.spi_intid(memmap.UART_SPI)
    icfgr, edge = icfgr_edge_bit(uart)
    # KVM resets SPIs edge-triggered: raising the line latches pending, lowering does not clear
    assert vgic.distributor_register(icfgr) & edge
    built.vm.set_spi(uart, True)
    built.vm.set_spi(uart, False)
    assert vgic.spi_pending(uart)
    # as a guest driver would: clear it, configure it level-sensitive (from user space KVM
    # ignores writes to GICD_ICPENDR; a write to GICD_ISPENDR sets the whole pending state)
    ispendr, bit = GICD_ISPENDR + 4 * (uart // 32), 1 << (uart % 32)
    vgic.set_distributor_register(ispendr, vgic.distributor_register(ispendr) & ~bit)
    vgic.set_distributor_register(icfgr, vgic.distributor_register(icfgr) & ~edge)
    assert not vgic.spi_pending(uart)
    built.vm.set_spi(uart, True)
    assert (vgic.spi_line_level(uart), vgic.spi_pending(uart)) == (True, False)
    built.vm.set_spi(uart, False)
    assert (vgic.spi_line_level(uart), vgic.spi_pending(uart)) == (False, False)


def test_an_spi_beyond_the_vgics_irqs_is_refused(machine: Callable[..., Machine]) -> None:
    built = machine(1)
    with pytest.raises(KvmError) as beyond:
        built.vm.set_spi(NUM_IRQS, True)
    assert beyond.value.errno == errno.EINVAL


PL011_STORE_OFFSET = 0x28
"""``PSCI_UART_PROGRAM`` from here: x2 = PL011, ``strb`` 'A' (a ``KVM_EXIT_MMIO`` store)."""


def reset_after_an_unserved_store(built: Machine, *, abandon: bool) -> VcpuExit:
    """Leave a PL011 store unserved, reset the vCPU as for a CPU_ON, run ``SYSTEM_OFF_PROGRAM``."""
    boot = built.vcpus[0]
    assert built.init is not None
    built.load(PSCI_UART_PROGRAM)
    built.load(SYSTEM_OFF_PROGRAM, ENTRY + 0x100)
    built.start(boot, ENTRY + PL011_STORE_OFFSET)
    assert run_until_exit(boot) == MmioWrite(memmap.UART.base, 1, ord("A"))
    if abandon:
        boot.abandon_exit()
    boot.init(built.init)
    built.start(boot, ENTRY + 0x100)
    return run_until_exit(boot)


def test_kvm_finishes_an_unserved_mmio_exit_after_a_reset_and_skips_the_first_instruction(
    machine: Callable[..., Machine],
) -> None:
    # KVM_ARM_VCPU_INIT keeps the pending MMIO completion: the next KVM_RUN steps the
    # new PC past `movz x0, #8`, so x0 = 0x84000000 (PSCI_VERSION), not SYSTEM_OFF
    exit_ = reset_after_an_unserved_store(machine(1), abandon=False)
    assert isinstance(exit_, Hypercall)
    assert exit_.nr == SYSTEM_OFF & ~0xFF


def test_an_abandoned_exit_lets_the_reset_vcpu_start_at_its_first_instruction(
    machine: Callable[..., Machine],
) -> None:
    exit_ = reset_after_an_unserved_store(machine(1), abandon=True)
    assert isinstance(exit_, Hypercall)
    assert exit_.nr == SYSTEM_OFF


GICD_ISENABLER, GICD_ISACTIVER = 0x0100, 0x0300
GICR_ISENABLER0, GICR_ISACTIVER0 = 0x1_0100, 0x1_0300
VIRTUAL_TIMER_PPI = 27


def test_the_vgic_reset_clears_what_a_guest_left_pending_or_active(
    machine: Callable[..., Machine],
) -> None:
    built = machine(2)
    vgic = built.vgic
    assert vgic is not None
    ged = memmap.spi_intid(memmap.ACPI_GED_SPI)
    word, bit = 4 * (ged // 32), 1 << (ged % 32)
    cpu1 = Topology(SmpConfig.parse("cpus=1,maxcpus=2")).slots[1].arch_id
    # what a guest reset in the middle of its GED handler leaves: the SPI enabled, active
    # and pending again, the timer PPI active, the CPU's active priority and its enables
    vgic.set_distributor_register(GICD_ISENABLER + word, bit)
    vgic.set_distributor_register(GICD_ISACTIVER + word, bit)
    vgic.set_distributor_register(GICD_ISPENDR + word, bit)
    vgic.set_redistributor_register(cpu1, GICR_ISENABLER0, 1 << VIRTUAL_TIMER_PPI)
    vgic.set_redistributor_register(cpu1, GICR_ISACTIVER0, 1 << VIRTUAL_TIMER_PPI)
    vgic.set_cpu_sysreg(cpu1, vgic_module.ICC_AP1R_EL1[0], 1 << 16)
    vgic.set_cpu_sysreg(cpu1, vgic_module.ICC_PMR_EL1, 0xF0)
    vgic.set_cpu_sysreg(cpu1, vgic_module.ICC_IGRPEN1_EL1, 1)
    assert vgic.spi_pending(ged)
    assert vgic.redistributor_register(cpu1, GICR_ISACTIVER0) & 1 << VIRTUAL_TIMER_PPI
    assert vgic.cpu_sysreg(cpu1, vgic_module.ICC_AP1R_EL1[0]) == 1 << 16

    vgic.reset_interrupt_state([cpu1])

    assert vgic.distributor_register(GICD_ISENABLER + word) & bit == 0
    assert vgic.distributor_register(GICD_ISACTIVER + word) & bit == 0
    assert not vgic.spi_pending(ged)
    assert vgic.redistributor_register(cpu1, GICR_ISACTIVER0) == 0
    assert vgic.redistributor_register(cpu1, GICR_ISENABLER0) == 0xFFFF  # SGIs stay enabled
    assert [vgic.cpu_sysreg(cpu1, reg) for reg in (
        vgic_module.ICC_AP1R_EL1[0], vgic_module.ICC_PMR_EL1, vgic_module.ICC_IGRPEN1_EL1,
    )] == [0, 0, 0]
