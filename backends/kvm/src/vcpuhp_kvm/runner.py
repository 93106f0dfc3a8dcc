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

Threads and locks (the machine has one ``RLock``; each vCPU a
:class:`threading.Condition`):

* ``power_on``, ``power_off``, pause and unrealize only record a request under
  the vCPU's condition and kick the vCPU (``immediate_exit`` + SIGUSR1, under
  the same condition): none of them blocks, so the machine calls them with
  its lock held, from any thread (``CPU_OFF`` comes from the vCPU's own
  thread, inside its hypercall). The thread reads its requests, under the
  condition, before every ``KVM_RUN``, and only then clears
  ``immediate_exit``: a kick that lands later is a request it has not yet
  seen, so it sets ``immediate_exit`` again.
* The thread never holds its condition while it calls the machine, and the
  machine needs no vCPU's condition to make progress.
* Every call into the machine takes the machine lock through
  :meth:`KvmVcpu._call_machine`, which gives up once the vCPU was powered off,
  reset or told to exit (its *epoch* moved). Eject holds the machine lock
  while it joins the ejected vCPU's thread: that thread is idle (the CPU is
  powered off) or abandons its wait. Pause holds the machine lock while it
  waits for every vCPU to leave ``KVM_RUN``: a vCPU waiting for the lock
  counts as stopped.
* A vCPU powered off while an exit was being served (``CPU_OFF``,
  ``SYSTEM_OFF``, ``SYSTEM_RESET`` from its own hypercall, or from another
  CPU) leaves its registers alone and goes idle; the next ``CPU_ON`` resets
  it with ``KVM_ARM_VCPU_INIT`` and marks any unfinished MMIO exit done, so
  the new entry point runs from its first instruction.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from vcpuhp.backend import BackendVcpu
from vcpuhp.errors import BackendError, GuestError, VcpuhpError
from vcpuhp.psci import to_register
from vcpuhp.topology import CpuSlot
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

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

LOCK_POLL: Final = 0.02
"""Seconds between checks for "give up" while waiting for the machine lock."""
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


class _Aborted(Exception):
    """The vCPU was powered off, reset or told to exit while it waited for the machine."""


class KvmVcpu(BackendVcpu):
    """A slot's KVM vCPU: created at realize for every possible CPU, never destroyed.

    The fd lives as long as the VM; a host thread exists only while the vCPU
    is realized (its CPU plugged).
    """

    def __init__(self, slot: CpuSlot, fd: VcpuFd, *, machine: VirtMachine, init: VcpuInit,
                 inject_aborts: bool) -> None:
        super().__init__(slot)
        self.fd = fd
        self._machine = machine
        self._init = init
        """``KVM_ARM_VCPU_INIT`` for a ``CPU_ON``: target + ``PSCI_0_2``, powered on."""
        self._inject_aborts = inject_aborts
        self._cond = threading.Condition()
        # Guarded by _cond:
        self._powered = False
        self._start: tuple[int, tuple[int, ...]] | None = None
        self._epoch = 0
        self._quit = False
        self._paused = False
        self._in_guest = False
        self._blocked_on_machine = False
        self.thread: threading.Thread | None = None
        self.thread_id: int | None = None
        """Native id of the host thread (QMP ``query-cpus-fast`` ``thread-id``)."""
        self.exits: Counter[str] = Counter(dict.fromkeys([*EXIT_KINDS.values(), "other"], 0))
        """``KVM_RUN`` results by kind (mmio_read, hypercall, interrupted, ...)."""
        self.external_aborts = 0
        self.faults = 0
        self.ran = False
        """Whether the vCPU was ever started (its vGIC state may hold something)."""

    @property
    def index(self) -> int:
        """The CPU index (= the KVM vCPU id)."""
        return self.slot.index

    @property
    def thread_alive(self) -> bool:
        """Whether the host thread exists and runs."""
        return self.thread is not None and self.thread.is_alive()

    # -- life cycle: realize / unrealize (these two wait for the thread) --------------------

    def start_thread(self, paused: bool) -> None:
        """Start the host thread, powered off; returns once it runs."""
        if self.thread is not None:
            raise BackendError(f"kvm: CPU {self.index} already has a host thread")
        with self._cond:
            self._quit = False
            self._paused = paused
            self._powered = False
            self._start = None
            self._epoch += 1
        ready = threading.Event()
        thread = threading.Thread(target=self._main, args=(ready,), daemon=True,
                                  name=f"vcpuhp-kvm-cpu{self.index}")
        self.thread = thread
        thread.start()
        ready.wait()

    def stop_thread(self) -> None:
        """Make the host thread exit and join it; the fd stays (the vCPU is parked)."""
        thread = self.thread
        if thread is None:
            return
        if thread is threading.current_thread():
            raise BackendError(f"kvm: CPU {self.index} cannot join its own thread")
        with self._cond:
            self._quit = True
            self._powered = False
            self._start = None
            self._epoch += 1
            self._kick_locked()
            self._cond.notify_all()
        thread.join(JOIN_TIMEOUT)
        if thread.is_alive():
            raise BackendError(
                f"kvm: CPU {self.index}'s thread did not exit within {JOIN_TIMEOUT:.0f}s"
            )
        self.thread = None
        self.thread_id = None

    # -- requests, from any thread (never block) -------------------------------------------

    def power_on(self, entry_point: int, args: Sequence[int]) -> None:
        """Reset the vCPU and start it at ``entry_point`` with ``args`` in x0..x3."""
        if len(args) > ENTRY_ARGS:
            raise BackendError(f"kvm: CPU {self.index} takes at most {ENTRY_ARGS} entry "
                               f"arguments (x0-x3), not {len(args)}")
        with self._cond:
            if self.thread is None or self._quit:
                raise BackendError(f"kvm: CPU {self.index} is not realized")
            self._powered = True
            self._start = (entry_point, tuple(args))
            self._epoch += 1
            self._kick_locked()
            self._cond.notify_all()

    def power_off(self) -> None:
        """Stop executing; the thread leaves ``KVM_RUN`` (kicked) and waits."""
        with self._cond:
            self._powered = False
            self._start = None
            self._epoch += 1
            self._kick_locked()
            self._cond.notify_all()

    def set_paused(self, paused: bool) -> None:
        """Keep the vCPU out of ``KVM_RUN`` (``True``) or let it run again."""
        with self._cond:
            self._paused = paused
            if paused:
                self._kick_locked()
            self._cond.notify_all()

    def wait_until_stopped(self, timeout: float) -> bool:
        """After pausing: wait until the vCPU is out of ``KVM_RUN`` (or waits for the machine)."""
        if self.thread is threading.current_thread():
            return True
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._in_guest or self._blocked_on_machine, timeout
            )

    def _kick_locked(self) -> None:
        """Kick the vCPU out of ``KVM_RUN``; the caller holds ``_cond`` (see the module doc)."""
        if not self.fd.closed:
            self.fd.kick()

    # -- the host thread ---------------------------------------------------------------------

    def _main(self, ready: threading.Event) -> None:
        self.thread_id = threading.get_native_id()
        ready.set()
        try:
            self._loop()
        except BaseException as exc:  # a bug in the loop itself: report, never hang
            _log.exception("kvm: CPU %d: vCPU thread failed", self.index)
            self._fault(None, exc)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._quit and not (self._powered and not self._paused):
                    self._cond.wait()
                if self._quit:
                    return
                start, self._start = self._start, None
                epoch = self._epoch
                self.fd.immediate_exit = False  # every request so far has been seen
                self._in_guest = start is None
            try:
                if start is not None:
                    self._reset(*start)
                    self._call_machine(epoch, self._machine.vcpu_started, self.index)
                    continue
                try:
                    result = self.fd.run()
                finally:
                    with self._cond:
                        self._in_guest = False
                        self._cond.notify_all()
                self.exits[EXIT_KINDS.get(type(result), "other")] += 1
                self._serve(result, epoch)
            except _Aborted:
                continue
            except Exception as exc:
                self._fault(epoch, exc)

    def _reset(self, entry_point: int, args: tuple[int, ...]) -> None:
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
        with self._cond:
            current = self._epoch == epoch
        if current:  # else CPU_OFF, SYSTEM_OFF or SYSTEM_RESET took this vCPU down: stay idle
            call.set_return(to_register(result))

    def _fault(self, epoch: int | None, error: BaseException) -> None:
        """Stop this vCPU and tell the machine (``VCPU_FAULT``); a stale error is dropped."""
        with self._cond:
            if epoch is not None and self._epoch != epoch:
                return  # the vCPU was powered off or reset meanwhile: the error is moot
            self._powered = False
            self._start = None
            self._epoch += 1
        self.faults += 1
        if isinstance(error, KvmError | VcpuFault):
            reason: BaseException = error
        else:
            reason = VcpuFault(f"{type(error).__name__}: {error}")
            reason.__cause__ = error
        try:
            self._call_machine(None, self._machine.vcpu_fault, self.index, reason)
        except _Aborted:
            _log.warning("kvm: CPU %d stopped while exiting: %s", self.index, error)

    def _call_machine(self, epoch: int | None, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` with the machine lock held; ``_Aborted`` if this vCPU was stopped
        meanwhile (``epoch`` ``None``: give up only when the thread must exit)."""
        lock = self._machine.lock
        if not lock.acquire(blocking=False):
            with self._cond:
                self._blocked_on_machine = True
                self._cond.notify_all()
            try:
                while not lock.acquire(timeout=LOCK_POLL):
                    self._check_current(epoch)
            finally:
                with self._cond:
                    self._blocked_on_machine = False
        try:
            self._check_current(epoch)
            return fn(*args)
        finally:
            lock.release()

    def _check_current(self, epoch: int | None) -> None:
        with self._cond:
            if self._quit or (epoch is not None and self._epoch != epoch):
                raise _Aborted


__all__ = ["KvmVcpu", "VcpuFault"]
