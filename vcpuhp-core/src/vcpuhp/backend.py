"""The accelerator backend contract.

Terms: a *slot* is a possible CPU; a backend *vCPU* is the accelerator object
that executes a slot (a KVM vCPU fd, a Unicorn engine, or nothing at all);
*realized* means the vCPU has its host resources (thread, registers reset)
and belongs to an enabled CPU; *parked* means it was created but belongs to
no enabled CPU (the seeds' "parked vCPUs": KVM can never destroy a vCPU).

The machine calls a backend in this order::

    create_irqchip(description)  at machine construction, only if in_kernel_irqchip
    attach(machine)              start of realize, RAM exists, no vCPU yet
    create_vcpu(slot)            every possible slot at realize if parks_vcpus,
                                 else on each plug
    realize_vcpu(vcpu)           cold-booted CPUs at realize, others on plug
    vcpus_created()              once, at realize, after every create_vcpu of realize
    power_on(vcpu, entry, args)  boot CPU at realize, others on PSCI CPU_ON
    power_off(vcpu)              PSCI CPU_OFF (from that vCPU), reset, shutdown
    unrealize_vcpu(vcpu)         on eject and at shutdown
    destroy_vcpu(vcpu)           on eject, only when not parks_vcpus
    close()                      machine shutdown (or a realize that failed)

Each method either succeeds fully or raises :class:`~vcpuhp.errors.BackendError`
having undone its own partial work; the machine then undoes its side, so a
failed plug leaves the machine exactly as it was.

Locking: the machine calls every method but :meth:`~AcceleratorBackend.close`
with its lock held, except during :meth:`~vcpuhp.machine.VirtMachine.shutdown`,
which powers off and unrealizes without the lock so that vCPU threads blocked
on it can finish. A vCPU thread calls into the machine
(``psci_call``, ``mmio_read``/``mmio_write``, ``vcpu_started``, ``vcpu_fault``),
which takes the lock; so ``unrealize_vcpu``, which joins that thread while
the machine lock is held (eject), must never wait for a thread that is itself
waiting for the lock: the thread must be able to give up its call once its
vCPU is powered off. A vCPU thread therefore waits for the lock with
:meth:`~vcpuhp.machine_lock.MachineLock.acquire_unless` (give up once powered
off or told to exit), and ``power_off`` / ``unrealize_vcpu`` call
:meth:`~vcpuhp.machine_lock.MachineLock.wake_waiters` after changing that state.
``power_off``, ``kick`` and ``power_on`` never block.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from vcpuhp.errors import BackendError
from vcpuhp.topology import CpuSlot

if TYPE_CHECKING:
    from vcpuhp.description import MachineDescription
    from vcpuhp.irqchip import InterruptController
    from vcpuhp.machine import VirtMachine


@dataclass(frozen=True)
class BackendCapabilities:
    """What a backend can do; tests and the machine check these, never backend names."""

    executes_guest_code: bool
    """vCPUs run real guest instructions (a kernel image is loaded)."""
    parks_vcpus: bool
    """Every possible vCPU is created at realize and parked when not enabled."""
    can_snapshot: bool = False
    """Backend vCPU state can be saved and restored."""
    in_kernel_irqchip: bool = False
    """The backend brings its own interrupt controller
    (:meth:`AcceleratorBackend.create_irqchip`, e.g. KVM's vGICv3); the
    guest's GIC registers never reach the machine."""

    def as_dict(self) -> dict[str, bool]:
        """The flags by name."""
        return {
            "executes_guest_code": self.executes_guest_code,
            "parks_vcpus": self.parks_vcpus,
            "can_snapshot": self.can_snapshot,
            "in_kernel_irqchip": self.in_kernel_irqchip,
        }


@dataclass(frozen=True)
class Viability:
    """Whether a backend can work on this host, and if not, why."""

    viable: bool
    reason: str = ""

    @classmethod
    def ok(cls) -> Viability:
        """A backend that works here."""
        return cls(True, "")

    @classmethod
    def no(cls, reason: str) -> Viability:
        """A backend that is installed but cannot work here, because of ``reason``."""
        return cls(False, reason)


class BackendVcpu:
    """The backend's object for one slot. Backends subclass it to hold their state."""

    def __init__(self, slot: CpuSlot) -> None:
        self.slot = slot
        self.realized = False

    def __repr__(self) -> str:
        state = "realized" if self.realized else "unrealized"
        name = type(self).__name__
        return f"<{name} cpu {self.slot.index} arch-id {self.slot.arch_id:#x} {state}>"


class AcceleratorBackend(ABC):
    """Base class of every accelerator backend.

    A subclass sets :attr:`name` (the entry-point name users select it by),
    :attr:`capabilities` and :attr:`distribution`, and implements the abstract
    methods. Register it under the ``vcpuhp.backends`` entry-point group, or
    return it from the :func:`~vcpuhp.hookspec.vcpuhp_register_backends` hook.
    """

    name: ClassVar[str]
    capabilities: ClassVar[BackendCapabilities]
    distribution: ClassVar[str] = ""
    """The PyPI distribution that provides it (used in install hints)."""

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        self.options = dict(options or {})
        self.machine: VirtMachine | None = None

    @classmethod
    def viability(cls) -> Viability:
        """Whether the backend can work on this host; the default says it can."""
        return Viability.ok()

    def create_irqchip(self, description: MachineDescription) -> InterruptController:
        """The backend's own interrupt controller (only if ``in_kernel_irqchip``).

        Called once when the machine is constructed, before :meth:`attach`;
        the controller is laid out over ``description.redistributor_regions``
        and typically binds to the accelerator in :meth:`vcpus_created`.
        """
        raise BackendError(
            f"backend {self.name!r} declares in_kernel_irqchip but has no create_irqchip"
        )

    def attach(self, machine: VirtMachine) -> None:
        """Called once at the start of machine realize, before any vCPU exists (RAM does)."""
        self.machine = machine

    def vcpus_created(self) -> None:
        """Every vCPU that realize creates now exists (all possible ones if the
        backend parks); the boot CPU has not run yet. KVM initialises its vGIC here."""

    @abstractmethod
    def create_vcpu(self, slot: CpuSlot) -> BackendVcpu:
        """Create the accelerator vCPU of ``slot`` (no host thread yet)."""

    @abstractmethod
    def realize_vcpu(self, vcpu: BackendVcpu) -> None:
        """Give ``vcpu`` its host resources; on return it is reset and powered off."""

    @abstractmethod
    def unrealize_vcpu(self, vcpu: BackendVcpu) -> None:
        """Release ``vcpu``'s host resources (join its thread); it stays creatable."""

    def destroy_vcpu(self, vcpu: BackendVcpu) -> None:
        """Free an unrealized ``vcpu`` (non-parking backends only)."""

    @abstractmethod
    def power_on(self, vcpu: BackendVcpu, entry_point: int, args: Sequence[int]) -> None:
        """Start ``vcpu`` at ``entry_point`` with ``args`` in x0, x1, ...

        The backend calls :meth:`VirtMachine.vcpu_started` once the vCPU really
        runs (from any thread, possibly before this method returns).
        """

    @abstractmethod
    def power_off(self, vcpu: BackendVcpu) -> None:
        """Stop executing ``vcpu`` (PSCI CPU_OFF on itself, or reset). Never blocks on it."""

    def kick(self, vcpu: BackendVcpu) -> None:
        """An interrupt may now be pending for ``vcpu``: wake it if it waits (non-blocking)."""

    def pause(self) -> None:
        """Stop executing every vCPU until :meth:`resume` (QMP ``stop``)."""

    def resume(self) -> None:
        """Continue after :meth:`pause` (QMP ``cont``)."""

    def stats(self) -> dict[str, Any]:
        """Resource counts (threads, engines, contexts ...) for queries and tests."""
        return {}

    def close(self) -> None:
        """Release everything; called once at machine shutdown."""
