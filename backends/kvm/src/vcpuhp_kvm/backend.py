"""The ``kvm`` accelerator: Linux KVM on an arm64 host, every possible vCPU created at realize.

Life cycle (the contract in :mod:`vcpuhp.backend`)::

    create_irqchip  the in-kernel vGICv3 as the machine's interrupt controller
                    (laid out now, bound to the VM in vcpus_created)
    attach          CPU model and maxcpus checked against the host, KVM_CREATE_VM
                    (IPA size from the memory map), guest RAM registered
                    (KVM_SET_USER_MEMORY_REGION)
    create_vcpu     every possible slot: KVM_CREATE_VCPU (id = CPU index),
                    KVM_ARM_VCPU_INIT (preferred target, PSCI_0_2, POWER_OFF for
                    all but CPU 0), MPIDR_EL1 = the slot's MPIDR
    realize_vcpu    a host thread that waits, powered off
    vcpus_created   the SMCCC filter (PSCI to user space), the vGICv3 over the
                    machine's redistributor regions, CTRL_INIT
    power_on        the vCPU's thread re-inits it (KVM_ARM_VCPU_INIT without
                    POWER_OFF), sets MPIDR, PC, x0-x3, PSTATE, runs KVM_RUN
    power_off       a kick; the thread leaves KVM_RUN and waits
    unrealize_vcpu  the thread exits and is joined; the fd stays (parked)
    close           every vCPU fd, the vGIC's fd, the VM fd, /dev/kvm

``parks_vcpus=True``: KVM can neither destroy a vCPU nor add one after
``CTRL_INIT``, so a plug takes a parked fd back and a ``CPU_ON`` resets it;
``total_vcpus_created`` equals ``maxcpus`` after realize and never grows.

No backend options.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from vcpuhp.backend import AcceleratorBackend, BackendCapabilities, BackendVcpu, Viability
from vcpuhp.errors import BackendError, ConfigError
from vcpuhp.gic import NUM_IRQS
from vcpuhp.topology import CpuSlot
from vcpuhp.vcpu_thread import pause_vcpus, resume_vcpus
from vcpuhp_kvm import kick, regs, uapi
from vcpuhp_kvm.irqchip import KvmInterruptController
from vcpuhp_kvm.requirements import CPU_MODELS, check_cpu_model, choose_ipa_bits
from vcpuhp_kvm.runner import EXIT_KINDS, KvmVcpu
from vcpuhp_kvm.smccc import forward_psci_to_user
from vcpuhp_kvm.system import Kvm
from vcpuhp_kvm.vcpu import VcpuInit
from vcpuhp_kvm.vgic import Vgicv3
from vcpuhp_kvm.viability import HostSupport, probe
from vcpuhp_kvm.vm import Vm

if TYPE_CHECKING:
    from vcpuhp.description import MachineDescription
    from vcpuhp.irqchip import InterruptController
    from vcpuhp.machine import VirtMachine

PAUSE_TIMEOUT: Final = 30.0
"""Seconds pause waits for every vCPU to leave ``KVM_RUN`` (nested emulation is slow)."""
RAM_SLOT: Final = 0
_probe_lock = threading.Lock()
_probed: list[HostSupport] = []


def host_support() -> HostSupport:
    """:func:`~vcpuhp_kvm.viability.probe`, once per process (the host does not change)."""
    with _probe_lock:
        if not _probed:
            _probed.append(probe())
        return _probed[0]


class KvmBackend(AcceleratorBackend):
    """Runs the guest on Linux KVM: one parked-or-running vCPU fd per possible CPU."""

    name = "kvm"
    distribution = "vcpuhp-kvm"
    capabilities = BackendCapabilities(executes_guest_code=True, parks_vcpus=True,
                                       in_kernel_irqchip=True)
    cpu_models: ClassVar[tuple[str, ...]] = CPU_MODELS

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        if self.options:
            raise ConfigError(f"kvm: unknown option(s) {', '.join(sorted(self.options))}; "
                              "the kvm backend takes none")
        if threading.current_thread() is threading.main_thread():
            kick.install_kick_handler()
        self.irqchip: KvmInterruptController | None = None
        self.kvm: Kvm | None = None
        self.vm: Vm | None = None
        self.vgic: Vgicv3 | None = None
        self.vcpus: dict[int, KvmVcpu] = {}
        self.ipa_bits: int | None = None
        """The VM's guest-physical address size (``None``: KVM's default, 40 bits)."""
        self.max_vcpus = 0
        self.inject_aborts = False
        """Whether a guest access to an unbacked address gets an external abort (else
        the vCPU stops with ``VCPU_FAULT``)."""
        self.paused = False
        self._init: VcpuInit | None = None
        self.total_vcpus_created = 0
        self.total_threads_started = 0
        self.total_threads_joined = 0
        self._retired_exits: Counter[str] = Counter()
        self._retired_aborts = 0
        self._retired_faults = 0

    @classmethod
    def viability(cls) -> Viability:
        """What :func:`vcpuhp_kvm.viability.probe` says about this host (probed once)."""
        return host_support().viability

    # -- the machine's interrupt controller ----------------------------------------------

    def create_irqchip(self, description: MachineDescription) -> InterruptController:
        """The in-kernel vGICv3, laid out over the machine's redistributor regions."""
        self.irqchip = KvmInterruptController(description.redistributor_regions)
        return self.irqchip

    # -- contract -----------------------------------------------------------------------------

    def attach(self, machine: VirtMachine) -> None:
        """Check the machine against this host's KVM, create the VM, register guest RAM."""
        if machine.memory is None:
            raise BackendError("kvm: attach before the machine has RAM")
        if self.irqchip is None:
            raise BackendError("kvm: the machine did not create the in-kernel interrupt "
                               "controller (create_irqchip) before realize")
        check_cpu_model(machine.config.cpu_model)
        kick.require_kick_handler()
        kvm = Kvm()
        try:
            limits = HostSupport(Viability.ok(), max_vcpus=kvm.max_vcpus(),
                                 max_vcpu_id=kvm.check_extension(uapi.KVM_CAP_MAX_VCPU_ID))
            limits.check_maxcpus(machine.topology.smp.maxcpus)
            ipa_bits = choose_ipa_bits(machine.description,
                                       kvm.check_extension(uapi.KVM_CAP_ARM_VM_IPA_SIZE))
            vm = kvm.create_vm(ipa_bits)
        except BaseException:
            kvm.close()
            raise
        try:
            memory = machine.memory
            vm.set_user_memory_region(RAM_SLOT, memory.base, memory.size, memory.host_address)
            self._init = vm.arm_preferred_target().with_features(uapi.KVM_ARM_VCPU_PSCI_0_2)
            self.inject_aborts = (kvm.check_extension(uapi.KVM_CAP_VCPU_EVENTS) > 0 and
                                  kvm.check_extension(uapi.KVM_CAP_ARM_INJECT_EXT_DABT) > 0)
        except BaseException:
            vm.close()
            kvm.close()
            raise
        self.kvm, self.vm, self.ipa_bits, self.max_vcpus = kvm, vm, ipa_bits, limits.max_vcpus
        super().attach(machine)

    def _require_vm(self) -> tuple[VirtMachine, Vm, VcpuInit]:
        if self.machine is None or self.vm is None or self._init is None:
            raise BackendError("kvm: the backend is not attached to a machine")
        return self.machine, self.vm, self._init

    def create_vcpu(self, slot: CpuSlot) -> KvmVcpu:
        """``KVM_CREATE_VCPU`` (id = CPU index), initialised (powered off but CPU 0), MPIDR set."""
        machine, vm, init = self._require_vm()
        if self.vgic is not None:
            raise BackendError(
                f"kvm: cannot create a vCPU for CPU {slot.index}: the vGIC is initialised, and "
                "KVM creates every possible vCPU before that (plug takes a parked one)"
            )
        if slot.index in self.vcpus:
            raise BackendError(f"kvm: CPU {slot.index} already has a vCPU")
        fd = vm.create_vcpu(slot.index)
        self.total_vcpus_created += 1
        try:
            off = (uapi.KVM_ARM_VCPU_POWER_OFF,) if slot.index != 0 else ()
            fd.init(init.with_features(*off))
            fd.set_one_reg(regs.MPIDR_EL1, slot.mpidr)
        except BaseException:
            fd.close()  # KVM keeps the vCPU until the VM goes; close() will free that
            raise
        vcpu = KvmVcpu(slot, fd, machine=machine, init=init, inject_aborts=self.inject_aborts)
        self.vcpus[slot.index] = vcpu
        return vcpu

    def vcpus_created(self) -> None:
        """The SMCCC filter, then the vGICv3 over every vCPU: create, addresses, ``CTRL_INIT``."""
        _, vm, _ = self._require_vm()
        assert self.irqchip is not None
        forward_psci_to_user(vm)
        vgic = Vgicv3.create(vm, self.irqchip.distributor_base, self.irqchip.regions, NUM_IRQS)
        try:
            vgic.initialize()
        except BaseException:
            vgic.close()
            raise
        self.vgic = vgic
        self.irqchip.bind(vm, on_reset=self._reset_vgic)

    def _reset_vgic(self) -> None:
        """A system reset of the vGIC (the irqchip's ``reset``): once no vCPU is in
        ``KVM_RUN`` (the machine powered them all off), clear what the vCPUs that ran
        left pending or active, and their CPU interfaces."""
        vgic = self.vgic
        if vgic is None:
            return
        for vcpu in self.vcpus.values():
            if vcpu.thread is not None and not vcpu.wait_until_stopped(PAUSE_TIMEOUT):
                raise BackendError(f"kvm: CPU {vcpu.index} did not leave KVM_RUN within "
                                   f"{PAUSE_TIMEOUT:.0f}s for the system reset")
        vgic.reset_interrupt_state([v.slot.arch_id for v in self.vcpus.values() if v.ran])

    def _own(self, vcpu: BackendVcpu) -> KvmVcpu:
        if not isinstance(vcpu, KvmVcpu) or self.vcpus.get(vcpu.slot.index) is not vcpu:
            raise BackendError(f"kvm: {vcpu!r} is not a vCPU of this backend")
        return vcpu

    def realize_vcpu(self, vcpu: BackendVcpu) -> None:
        """Start the vCPU's host thread; it waits, powered off, for ``power_on``."""
        self._own(vcpu).start_thread(paused=self.paused)
        self.total_threads_started += 1

    def unrealize_vcpu(self, vcpu: BackendVcpu) -> None:
        """Stop and join the vCPU's thread; its fd stays for the machine to park."""
        own = self._own(vcpu)
        if own.thread is not None:
            own.stop_thread()
            self.total_threads_joined += 1

    def power_on(self, vcpu: BackendVcpu, entry_point: int, args: Sequence[int]) -> None:
        """Reset the vCPU and start it at ``entry_point`` with ``args`` in x0..x3 (non-blocking)."""
        self._own(vcpu).power_on(entry_point, args)

    def power_off(self, vcpu: BackendVcpu) -> None:
        """Stop executing the vCPU: a kick; never waits for it."""
        self._own(vcpu).power_off()

    def kick(self, vcpu: BackendVcpu) -> None:
        """Nothing to do: the in-kernel vGIC wakes a vCPU waiting in ``WFI`` by itself.

        (The machine calls this only for the userspace GIC model's interrupt
        signal, which this backend replaces.)
        """

    def pause(self) -> None:
        """Keep every vCPU out of ``KVM_RUN`` until :meth:`resume`; waits until none is in it."""
        self.paused = True
        pause_vcpus(self.vcpus.values(), PAUSE_TIMEOUT)

    def resume(self) -> None:
        """Let every vCPU run again."""
        self.paused = False
        resume_vcpus(self.vcpus.values())

    def stats(self) -> dict[str, Any]:
        """Live vCPU fds and threads, the VM's shape, cumulative counts (``total_*``).

        ``total_exits_<kind>`` counts ``KVM_RUN`` results by kind: ``mmio_read``,
        ``mmio_write``, ``hypercall``, ``system_event``, ``interrupted`` (kicks) and
        ``other`` (each a vCPU fault).
        """
        vcpus = list(self.vcpus.values())
        exits: Counter[str] = Counter(self._retired_exits)
        for vcpu in vcpus:
            exits.update(dict(vcpu.exits))
        return {
            "vcpu_fds": sum(1 for v in vcpus if not v.fd.closed),
            "threads": sum(1 for v in vcpus if v.thread_alive),
            "vgic": self.vgic is not None and not self.vgic.device.closed,
            "vm": self.vm is not None and not self.vm.closed,
            "ipa_bits": self.ipa_bits or 40,
            "max_vcpus": self.max_vcpus,
            "total_vcpus_created": self.total_vcpus_created,
            "total_threads_started": self.total_threads_started,
            "total_threads_joined": self.total_threads_joined,
            **{f"total_exits_{kind}": exits[kind] for kind in [*EXIT_KINDS.values(), "other"]},
            "total_external_aborts": self._retired_aborts + sum(v.external_aborts
                                                                for v in vcpus),
            "total_faults": self._retired_faults + sum(v.faults for v in vcpus),
            "total_spi_edges": self.irqchip.edges_sent if self.irqchip is not None else 0,
        }

    def close(self) -> None:
        """Join every thread, close every vCPU fd (unmapping its ``kvm_run``), the vGIC, the VM.

        Afterwards the backend holds nothing and may be attached again (a
        realize that failed part-way is retried that way).
        """
        errors: list[str] = []
        for vcpu in list(self.vcpus.values()):
            try:
                self.unrealize_vcpu(vcpu)
            except BackendError as exc:
                errors.append(str(exc))
                continue
            vcpu.realized = False
            vcpu.fd.close()
            self._retired_exits.update(dict(vcpu.exits))
            self._retired_aborts += vcpu.external_aborts
            self._retired_faults += vcpu.faults
            del self.vcpus[vcpu.index]
        if self.irqchip is not None:
            self.irqchip.close()
        for fd in (self.vgic, self.vm, self.kvm):
            if fd is not None:
                fd.close()
        self.vgic = self.vm = self.kvm = None
        self._init = None
        if errors:
            raise BackendError("kvm: close left resources behind: " + "; ".join(errors))


__all__ = ["KvmBackend", "host_support"]
