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

Who plays the guest: a backend that ``executes_guest_code`` runs the image the
machine loads (the bundled guest firmware by default), which onlines CPUs with
PSCI and answers the ACPI hotplug protocol itself. A backend that does not
(``null``) executes nothing: a program outside the machine plays the guest OS
through the machine API (``mmio_read``/``mmio_write``, ``psci_call`` on
behalf of a CPU), such as :class:`vcpuhp.testing.guest.ScriptedGuest`.

Rules. The conformance suite (:mod:`vcpuhp.testing.suite`) checks each rule
from outside the backend and quotes it (:data:`RULES`) when it fails:

* Errors: every method must raise BackendError having undone its partial work
  when it fails (a :class:`~vcpuhp.errors.ConfigError` for a configuration it
  cannot run is fine too); the machine then undoes its own side, so a failed
  plug leaves the machine exactly as it was. Any other exception is a
  contract violation, which the machine reports as one
  (:class:`~vcpuhp.errors.ContractViolation`).
* Starting: power_on must lead to VirtMachine.vcpu_started(index) once the
  vCPU runs (from any thread, possibly before power_on returns).
* Powered off until power_on: realize_vcpu leaves the vCPU reset and powered
  off, and a vCPU calls vcpu_started only after a power_on.
* Non-blocking: power_off, kick and power_on never block: they must return
  without waiting for the vCPU thread.
* Locking: the machine calls every method but close with its lock held,
  except during VirtMachine.shutdown, which powers off and unrealizes without
  the lock so that vCPU threads blocked on it can finish. A vCPU thread calls
  into the machine (``psci_call``, ``mmio_read``/``mmio_write``,
  ``vcpu_started``, ``vcpu_fault``), which takes the lock. So power_off
  called with the machine lock held must not wait for the vCPU thread, which
  may itself be waiting for the lock; and unrealize_vcpu, called on eject
  with the machine lock held, must not wait for a vCPU thread that is waiting
  for the lock: the thread must give up its call once its vCPU is powered off.
  A vCPU thread can wait with :meth:`~vcpuhp.machine_lock.MachineLock.acquire_unless`
  (give up once powered off or told to exit, no polling) if power_off and
  unrealize_vcpu call :meth:`~vcpuhp.machine_lock.MachineLock.wake_waiters` after
  changing that state. A backend with one host thread per vCPU gets all of
  this from :class:`vcpuhp.vcpu_thread.ThreadedVcpu`.
* Freeing: unrealize_vcpu releases the vCPU's host resources: when it returns,
  the vCPU's thread has ended. destroy_vcpu frees the vCPU: the backend keeps
  no reference to it. close must free every vCPU, parked ones included, end
  every thread and close every file descriptor the backend opened.
* Parking: a backend that parks_vcpus keeps one vCPU object per possible CPU
  for the machine's lifetime, and the machine plugs the same object into its
  slot every time; one that does not creates a vCPU on plug and frees it on
  eject.
* Pausing: pause stops executing every vCPU until resume: when it returns, no
  vCPU executes guest code.
* Statistics: stats keys named total_* or peak* are cumulative and may only
  grow; every other key is a current count or a setting and must be back to
  its value once the machine is back in the same state (the same CPUs
  plugged and online).
* Options: the constructor raises ConfigError naming the valid options for an
  option it does not know.
* Instances: a backend instance serves one machine; two machines on the same
  backend share no vCPU, thread or state.
* Interrupt controller: a backend with in_kernel_irqchip returns its
  controller from create_irqchip, and the machine then never uses its
  userspace GIC model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from vcpuhp.errors import BackendError
from vcpuhp.topology import CpuSlot

if TYPE_CHECKING:
    from vcpuhp.description import MachineDescription
    from vcpuhp.irqchip import InterruptController
    from vcpuhp.machine import VirtMachine

RULES: Final[Mapping[str, str]] = {
    "errors": "{method} must raise BackendError having undone its partial work",
    "vcpu-started": "power_on must lead to VirtMachine.vcpu_started(index) once the vCPU runs",
    "powered-off": "realize_vcpu leaves the vCPU reset and powered off, and a vCPU calls "
                   "vcpu_started only after a power_on",
    "non-blocking": "power_off, kick and power_on never block: they must return without "
                    "waiting for the vCPU thread",
    "lock-power-off": "power_off called with the machine lock held must not wait for the vCPU "
                      "thread, which may itself be waiting for the lock",
    "lock-unrealize": "unrealize_vcpu, called on eject with the machine lock held, must not "
                      "wait for a vCPU thread that is waiting for the lock: the thread must give "
                      "up its call once its vCPU is powered off",
    "unrealize-joins": "unrealize_vcpu releases the vCPU's host resources: when it returns, "
                       "the vCPU's thread has ended",
    "destroy-frees": "destroy_vcpu frees the vCPU: the backend keeps no reference to it",
    "close-frees": "close must free every vCPU, parked ones included, end every thread and "
                   "close every file descriptor the backend opened",
    "parking": "a backend that parks_vcpus keeps one vCPU object per possible CPU for the "
               "machine's lifetime, and the machine plugs the same object into its slot every "
               "time; one that does not creates a vCPU on plug and frees it on eject",
    "pause": "pause stops executing every vCPU until resume: when it returns, no vCPU executes "
             "guest code",
    "stats-keys": "stats keys named total_* or peak* are cumulative and may only grow; every "
                  "other key is a current count or a setting and must be back to its value once "
                  "the machine is back in the same state",
    "options": "the constructor raises ConfigError naming the valid options for an option it "
               "does not know",
    "instances": "a backend instance serves one machine; two machines on the same backend share "
                 "no vCPU, thread or state",
    "irqchip": "a backend with in_kernel_irqchip returns its controller from create_irqchip, and "
               "the machine then never uses its userspace GIC model",
}
"""The contract's rules by name, worded as in this module's docstring; the
conformance suite quotes them (``contract: <rule>``) when a check fails."""

CUMULATIVE_STATS_PREFIXES: Final = ("total_", "peak")
""":meth:`AcceleratorBackend.stats` keys starting with these may only grow."""


def rule(name: str, method: str = "") -> str:
    """``contract: <the rule's wording>`` (``{method}`` filled in), for error messages."""
    return "contract: " + RULES[name].format(method=method)


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
    cpu_models: ClassVar[tuple[str, ...]] = ()
    """CPU models (:data:`vcpuhp.config.CPU_MODELS`) this backend can run, preferred
    first; empty means all of them. The CLI picks the first when no ``--cpu`` is given."""

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        """Take the backend ``options`` (``--accel NAME,key=value``).

        A subclass raises :class:`~vcpuhp.errors.ConfigError` naming the valid
        options for an option it does not know.
        """
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
        """Create the accelerator vCPU of ``slot`` (no host thread yet).

        The returned object's ``slot`` is ``slot``.
        """

    @abstractmethod
    def realize_vcpu(self, vcpu: BackendVcpu) -> None:
        """Give ``vcpu`` its host resources; on return it is reset and powered off.

        It runs nothing until :meth:`power_on`.
        """

    @abstractmethod
    def unrealize_vcpu(self, vcpu: BackendVcpu) -> None:
        """Release ``vcpu``'s host resources: when it returns, its thread has ended.

        On eject this runs with the machine lock held: a vCPU thread waiting for
        that lock must give up its call (its vCPU is powered off by then) so
        that joining it cannot deadlock.
        """

    def destroy_vcpu(self, vcpu: BackendVcpu) -> None:
        """Free an unrealized ``vcpu`` (non-parking backends only): keep no reference to it."""

    @abstractmethod
    def power_on(self, vcpu: BackendVcpu, entry_point: int, args: Sequence[int]) -> None:
        """Start ``vcpu`` at ``entry_point`` with ``args`` in x0, x1, ...

        The backend calls :meth:`VirtMachine.vcpu_started` once the vCPU really
        runs (from any thread, possibly before this method returns). Never
        blocks: it must return without waiting for the vCPU thread.
        """

    @abstractmethod
    def power_off(self, vcpu: BackendVcpu) -> None:
        """Stop executing ``vcpu`` (PSCI CPU_OFF on itself, reset, shutdown).

        Never blocks: it is called with the machine lock held, possibly on
        ``vcpu``'s own thread, while that thread may be waiting for the lock.
        """

    def kick(self, vcpu: BackendVcpu) -> None:
        """An interrupt may now be pending for ``vcpu``: wake it if it waits (non-blocking)."""

    def pause(self) -> None:
        """Stop executing every vCPU until :meth:`resume` (QMP ``stop``).

        When it returns, no vCPU executes guest code.
        """

    def resume(self) -> None:
        """Continue after :meth:`pause` (QMP ``cont``)."""

    def stats(self) -> dict[str, Any]:
        """Resource counts (threads, engines, contexts ...) for queries and tests.

        Keys named ``total_*`` or ``peak*`` are cumulative and may only grow;
        every other key is a current count or a setting and is back to its
        value once the machine is back in the same state.
        """
        return {}

    def close(self) -> None:
        """Release everything; called once at machine shutdown (or a failed realize).

        It must free every vCPU, parked ones included, end every thread and
        close every file descriptor the backend opened.
        """
