"""One realized vCPU under kvm: its fd, its host thread, and what its exits do to the machine.

The thread runs ``KVM_RUN`` and serves each exit from the machine:

====================  ===========================================================
exit                  what happens
====================  ===========================================================
``MmioRead``          ``machine.mmio_read(addr, size, cpu=index)``, the value completes the load
``MmioWrite``         ``machine.mmio_write(addr, size, value, cpu=index)``
  (no device/RAM)     the machine's :class:`~vcpuhp.errors.GuestError` is reported as a
                      ``GUEST_ERROR`` event and the guest takes a synchronous external abort
                      at the access (``KVM_SET_VCPU_EVENTS``); without
                      ``KVM_CAP_ARM_INJECT_EXT_DABT`` the vCPU stops with ``VCPU_FAULT``
``Hypercall``         ``machine.psci_call(index, function id, x1, x2, x3)``, the result to x0
                      (PSCI reaches user space through the SMCCC filter)
``SystemEvent``       shutdown/reset (KVM's own PSCI, which the filter keeps from happening):
                      ``guest_system_off`` / ``guest_system_reset``; anything else stops the vCPU
``Interrupted``       a kick: look at the requests again
anything else         ``VCPU_FAULT``: this vCPU stops, the others run on
====================  ===========================================================

Threads and locks: the host thread, its requests, the epochs and the
abandonable machine calls are :class:`vcpuhp.vcpu_thread.ThreadedVcpu`'s;
this module supplies the KVM parts:

* *running the guest*: ``KVM_RUN`` and serving its exit. The thread clears
  ``immediate_exit`` right after it looked at its requests for the last time
  before ``KVM_RUN`` (under the vCPU's condition), so a request recorded
  later kicks it and the next ``KVM_RUN`` returns at once;
* *stopping a running guest*: a kick (``immediate_exit`` + SIGUSR1 to the
  thread in ``KVM_RUN``, :mod:`~vcpuhp_kvm.kick`);
* *a reset* (``CPU_ON``): ``KVM_ARM_VCPU_INIT`` and the registers, on the
  vCPU's own thread (KVM serialises every vCPU ioctl on the vCPU's mutex).

Every call into the machine gives up once the vCPU was powered off, reset or
told to exit. Eject holds the machine lock while it joins the ejected vCPU's
thread: that thread is idle (the CPU is powered off) or abandons its wait.
Pause and the vGIC's system reset hold the machine lock while they wait for
every vCPU to leave ``KVM_RUN``: a vCPU waiting for the lock counts as
stopped. A vCPU powered off while an exit was being served (``CPU_OFF``,
``SYSTEM_OFF``, ``SYSTEM_RESET`` from its own hypercall, or from another CPU)
leaves its registers alone and goes idle; the next ``CPU_ON`` resets it with
``KVM_ARM_VCPU_INIT`` and marks any unfinished MMIO exit done, so the new
entry point runs from its first instruction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from vcpuhp.errors import BackendError, GuestError, VcpuhpError
from vcpuhp.psci import to_register
from vcpuhp.topology import CpuSlot
from vcpuhp.vcpu_thread import ThreadedVcpu
from vcpuhp_kvm import regs
from vcpuhp_kvm.errors import KvmError
from vcpuhp_kvm.exits import (
    Hypercall,
    Interrupted,
    MmioRead,
    MmioWrite,
    SystemEvent,
    VcpuExit,
)
from vcpuhp_kvm.vcpu import VcpuFd, VcpuInit

if TYPE_CHECKING:
    from vcpuhp.machine import VirtMachine

JOIN_TIMEOUT: Final = 60.0
"""Seconds unrealize waits for a vCPU thread to exit (generous: nested emulation is slow)."""
ENTRY_ARGS: Final = 4
"""x0-x3: what a CPU is started with (the boot protocols use at most four)."""

EXIT_KINDS: Final = {
    MmioRead: "mmio_read", MmioWrite: "mmio_write", Hypercall: "hypercall",
    SystemEvent: "system_event", Interrupted: "interrupted",
}
"""Names of the exit kinds counted in the backend's statistics (the rest are "other")."""


class VcpuFault(GuestError):
    """Something a vCPU did that the backend cannot serve; that vCPU stopped."""


class KvmVcpu(ThreadedVcpu):
    """A slot's KVM vCPU: created at realize for every possible CPU, never destroyed.

    The fd lives as long as the VM; a host thread exists only while the vCPU
    is realized (its CPU plugged).
    """

    label = "kvm"
    thread_name_prefix = "vcpuhp-kvm-cpu"
    join_timeout = JOIN_TIMEOUT

    def __init__(self, slot: CpuSlot, fd: VcpuFd, *, machine: VirtMachine, init: VcpuInit,
                 inject_aborts: bool) -> None:
        super().__init__(slot, machine)
        self.fd = fd
        self._init = init
        """``KVM_ARM_VCPU_INIT`` for a ``CPU_ON``: target + ``PSCI_0_2``, powered on."""
        self._inject_aborts = inject_aborts
        self.exits: Counter[str] = Counter(dict.fromkeys([*EXIT_KINDS.values(), "other"], 0))
        """``KVM_RUN`` results by kind (mmio_read, hypercall, interrupted, ...)."""
        self.external_aborts = 0
        self.ran = False
        """Whether the vCPU was ever started (its vGIC state may hold something)."""

    def power_on(self, entry_point: int, args: Sequence[int]) -> None:
        """Reset the vCPU and start it at ``entry_point`` with ``args`` in x0..x3."""
        if len(args) > ENTRY_ARGS:
            raise BackendError(f"kvm: CPU {self.index} takes at most {ENTRY_ARGS} entry "
                               f"arguments (x0-x3), not {len(args)}")
        super().power_on(entry_point, args)

    # -- the KVM parts of the thread ---------------------------------------------------------

    def _stop_guest(self) -> None:
        """Kick the vCPU out of ``KVM_RUN`` (see the module doc)."""
        if not self.fd.closed:
            self.fd.kick()

    def _run_guest(self, epoch: int) -> None:
        """One ``KVM_RUN``, then serve its exit."""
        with self._cond:
            if not self._enter_guest(epoch):
                return
            self.fd.immediate_exit = False  # every request so far has been seen
        try:
            result = self.fd.run()
        finally:
            self._leave_guest(epoch)
        self.exits[EXIT_KINDS.get(type(result), "other")] += 1
        self._serve(result, epoch)

    def _reset_guest(self, entry_point: int, args: tuple[int, ...]) -> None:
        """``KVM_ARM_VCPU_INIT`` (powered on), ``MPIDR_EL1``, PC, x0-x3, PSTATE EL1h DAIF masked."""
        fd = self.fd
        self.ran = True
        fd.abandon_exit()
        fd.init(self._init)
        fd.set_one_reg(regs.MPIDR_EL1, self.slot.mpidr)
        for n, value in enumerate((*args, *(0,) * (ENTRY_ARGS - len(args)))):
            fd.set_one_reg(regs.x(n), value & 0xFFFF_FFFF_FFFF_FFFF)
        fd.set_one_reg(regs.PC, entry_point)
        fd.set_one_reg(regs.PSTATE, regs.PSTATE_EL1H_DAIF_MASKED)

    def _serve(self, result: VcpuExit, epoch: int) -> None:
        machine = self._machine
        if isinstance(result, Interrupted):
            return
        if isinstance(result, MmioRead):
            try:
                value = self._call_machine(epoch, machine.mmio_read, result.addr, result.size,
                                           self.index)
            except GuestError as exc:
                self._unserved_access(epoch, "read", result.addr, result.size, exc)
                return
            result.complete(value)
            return
        if isinstance(result, MmioWrite):
            try:
                self._call_machine(epoch, machine.mmio_write, result.addr, result.size,
                                   result.data, self.index)
            except GuestError as exc:
                self._unserved_access(epoch, "write", result.addr, result.size, exc)
            return
        if isinstance(result, Hypercall):
            self._psci(epoch, result)
            return
        if isinstance(result, SystemEvent):
            if result.shutdown:
                self._call_machine(epoch, machine.guest_system_off)
            elif result.reset:
                self._call_machine(epoch, machine.guest_system_reset)
            else:
                raise VcpuFault(f"KVM system event {result.type} (flags {result.flags:#x}, "
                                f"data {result.data}) is not handled by this machine")
            return
        raise VcpuFault(f"KVM_RUN returned {result}, which this backend cannot serve")

    def _unserved_access(self, epoch: int, kind: str, addr: int, size: int,
                         error: GuestError) -> None:
        """An MMIO access nothing answers: report it, abort the guest's access (or stop)."""
        if not self._inject_aborts:
            raise VcpuFault(f"{kind} of {size} bytes at {addr:#x}: {error} (this host's KVM "
                            "cannot inject an external abort: KVM_CAP_ARM_INJECT_EXT_DABT)")
        message = (f"CPU {self.index}: {kind} of {size} bytes at {addr:#x}: {error}; "
                   "synchronous external abort injected")
        self._call_machine(epoch, self._machine.guest_error, message)
        self.fd.inject_external_data_abort()
        self.external_aborts += 1

    def _psci(self, epoch: int, call: Hypercall) -> None:
        machine = self._machine
        try:
            result = self._call_machine(epoch, machine.psci_call, self.index, call.nr,
                                        *call.args)
        except VcpuhpError as exc:
            if machine.is_shut_down:
                return  # the machine stopped while the call waited: nothing runs any more
            raise VcpuFault(f"PSCI call {call.nr:#x} failed: {exc}") from exc
        if self._is_current(epoch):  # else CPU_OFF, SYSTEM_OFF or SYSTEM_RESET took it down
            call.set_return(to_register(result))

    def _on_fault(self, error: BaseException) -> BaseException:
        """What ``VCPU_FAULT`` reports: a KVM error or a :class:`VcpuFault` as it is, any
        other exception (a bug) as a :class:`VcpuFault` naming it."""
        if isinstance(error, KvmError | VcpuFault):
            return error
        reason = VcpuFault(f"{type(error).__name__}: {error}")
        reason.__cause__ = error
        return reason


__all__ = ["KvmVcpu", "VcpuFault"]
