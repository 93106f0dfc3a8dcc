"""A vCPU: one Unicorn engine driven by one host thread.

Execution runs in *slices*: ``emu_start`` with an instruction budget
(:data:`DEFAULT_SLICE`, backend option ``slice-insns``). Between slices, and
whenever ``wfi`` ends one early, the thread looks at what it was asked to do.
Nothing ever stops a running engine from outside: Unicorn 2.1.4 makes such a
stop re-execute the last load or store (see :mod:`~vcpuhp_tcg_unicorn.engine`).

Threads and locks (the machine has one ``RLock``; each vCPU has a
:class:`threading.Condition` of its own):

* Everything that changes what a vCPU thread should do -- ``power_on``,
  ``power_off``, ``kick``, pause, unrealize -- only updates fields under the
  vCPU's condition and notifies it. None of it blocks, so the machine may call
  it with its lock held, from any thread (PSCI ``CPU_ON`` of B runs on A's
  thread; ``CPU_OFF`` runs on the CPU's own thread inside its ``hvc`` hook).
  A running vCPU notices at the end of its slice.
* The vCPU thread never holds its condition while it calls the machine, and
  the machine never needs a vCPU's condition to make progress: no lock-order
  cycle.
* Every call a vCPU thread makes into the machine (MMIO, PSCI, ``ICC_*``,
  ``vcpu_started``, ``vcpu_fault``) takes the machine lock through
  :meth:`UnicornVcpu._call_machine`, which gives up (raising ``_Aborted``)
  once the vCPU has been powered off or told to exit. So when the machine,
  holding its lock, unrealizes (joins) a vCPU -- eject runs on the ejecting
  guest CPU's thread inside its MMIO write -- the target thread is never
  stuck waiting for that lock: it is idle on its own condition (it is powered
  off, which eject requires) or it abandons the wait.
* Every power-state change bumps an *epoch*. A hook that went to the machine
  compares epochs when it comes back: if its own vCPU was powered off or reset
  meanwhile (``CPU_OFF``, ``SYSTEM_RESET``) it ends the slice from the
  exception hook (an exact stop) and leaves the registers alone.
* While the machine is paused, a vCPU that completes a machine call inside a
  hook waits there (the access done, the instruction not yet retired) until
  resume, so it executes nothing more.

Interrupts: Unicorn never enters the guest's vector table, so the thread does
it (:meth:`Engine.take_irq`) between slices when the GIC says the IRQ line is
up and ``PSTATE.I`` is clear. After ``wfi`` the thread sleeps on its condition
until a kick (the GIC signals whenever a CPU may have something new); a
running vCPU takes a new interrupt at the end of its slice, and a masked one
as soon as a slice ends with ``PSTATE.I`` clear.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from vcpuhp.backend import BackendVcpu
from vcpuhp.errors import BackendError, GicAccessError, GuestError, VcpuhpError
from vcpuhp.gic import ICC_SYSREGS
from vcpuhp.psci import to_register
from vcpuhp.topology import CpuSlot
from vcpuhp_tcg_unicorn.binding import UcError
from vcpuhp_tcg_unicorn.binding import const as unicorn_const
from vcpuhp_tcg_unicorn.decode import WFI, SysregAccess, decode_sysreg, hvc_immediate
from vcpuhp_tcg_unicorn.engine import (
    EXCEPTION_NAMES,
    EXCP_HVC,
    EXCP_SMC,
    EXCP_UDEF,
    Engine,
    RamMapping,
)
from vcpuhp_tcg_unicorn.pool import TranslationContext, TranslationContextPool

if TYPE_CHECKING:
    from vcpuhp.machine import VirtMachine

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_SLICE: Final = 100_000
"""Guest instructions per ``emu_start`` (about a millisecond): the latency of
interrupts, pause and power-off for a vCPU that is busy (not in ``wfi``)."""
LOCK_POLL: Final = 0.02
"""Seconds between checks for "give up" while waiting for the machine lock."""
JOIN_TIMEOUT: Final = 10.0
PSCI_IMMEDIATE: Final = 0

_ACCESS_NAMES: Final = {
    "UC_MEM_READ_UNMAPPED": "read",
    "UC_MEM_WRITE_UNMAPPED": "write",
    "UC_MEM_FETCH_UNMAPPED": "instruction fetch",
    "UC_MEM_READ_PROT": "read (protected)",
    "UC_MEM_WRITE_PROT": "write (protected)",
    "UC_MEM_FETCH_PROT": "instruction fetch (protected)",
}


def _access_name(access: int) -> str:
    for constant, name in _ACCESS_NAMES.items():
        if getattr(unicorn_const, constant, None) == access:
            return name
    return f"access type {access}"


class VcpuFault(GuestError):
    """The guest did something the backend cannot emulate; that vCPU stopped."""


class _Aborted(Exception):
    """The vCPU was powered off or told to exit while it waited for the machine."""


class UnicornVcpu(BackendVcpu):
    """One slot's engine, host thread and run state."""

    def __init__(
        self,
        slot: CpuSlot,
        *,
        machine: VirtMachine,
        pool: TranslationContextPool,
        cpu_model: str,
        tb_size: int,
        ram: RamMapping,
        mmio: Sequence[tuple[int, int]],
        slice_instructions: int = DEFAULT_SLICE,
    ) -> None:
        super().__init__(slot)
        self._machine = machine
        self._pool = pool
        self.slice_instructions = slice_instructions
        self.engine = Engine(cpu_model=cpu_model, tb_size=tb_size, ram=ram, mmio=mmio,
                             mpidr=slot.mpidr, exits=self)
        self._cond = threading.Condition()
        # Fields below are guarded by _cond.
        self._powered = False
        self._start: tuple[int, tuple[int, ...]] | None = None
        self._epoch = 0
        self._quit = False
        self._paused = False
        self._kicked = False
        self._in_engine = False
        self._blocked_on_machine = False
        self._held = False
        # Owned by the vCPU thread.
        self._run_epoch = 0
        self._invalid_access: tuple[int, int, int] | None = None
        self.thread: threading.Thread | None = None
        self.thread_id: int | None = None
        """Native id of the host thread (QMP ``query-cpus-fast`` ``thread-id``)."""
        self.context: TranslationContext | None = None
        self.irqs_taken = 0
        self.faults = 0

    @property
    def index(self) -> int:
        """The CPU index."""
        return self.slot.index

    @property
    def thread_alive(self) -> bool:
        """Whether the host thread exists and runs."""
        return self.thread is not None and self.thread.is_alive()

    # -- life cycle (realize / unrealize: these two wait for the thread) ---------------------

    def start_thread(self, paused: bool) -> None:
        """Start the host thread powered off; returns once it registered its context."""
        if self.thread is not None:
            raise BackendError(f"tcg-unicorn: CPU {self.index} already has a host thread")
        with self._cond:
            self._quit = False
            self._paused = paused
            self._powered = False
            self._start = None
            self._epoch += 1
        ready = threading.Event()
        startup_errors: list[BaseException] = []
        thread = threading.Thread(target=self._main, args=(ready, startup_errors), daemon=True,
                                  name=f"vcpuhp-cpu{self.index}")
        self.thread = thread
        thread.start()
        ready.wait()
        if startup_errors:
            thread.join()
            self.thread = None
            raise startup_errors[0]

    def stop_thread(self) -> None:
        """Make the host thread exit and join it (it unregisters its context on the way)."""
        thread = self.thread
        if thread is None:
            return
        if thread is threading.current_thread():
            raise BackendError(f"tcg-unicorn: CPU {self.index} cannot join its own thread")
        with self._cond:
            self._quit = True
            self._powered = False
            self._start = None
            self._epoch += 1
            self._cond.notify_all()
        thread.join(JOIN_TIMEOUT)
        if thread.is_alive():
            raise BackendError(
                f"tcg-unicorn: CPU {self.index}'s thread did not exit within {JOIN_TIMEOUT}s"
            )
        self.thread = None
        self.thread_id = None

    # -- control, from any thread (never blocks) ------------------------------------------

    def power_on(self, entry_point: int, args: Sequence[int]) -> None:
        """Reset and start at ``entry_point``; the thread reports ``vcpu_started``."""
        with self._cond:
            if self.thread is None or self._quit:
                raise BackendError(f"tcg-unicorn: CPU {self.index} is not realized")
            self._powered = True
            self._start = (entry_point, tuple(args))
            self._epoch += 1
            self._cond.notify_all()

    def power_off(self) -> None:
        """Stop executing (at the end of the current slice); the thread then waits."""
        with self._cond:
            self._powered = False
            self._start = None
            self._epoch += 1
            self._cond.notify_all()

    def kick(self) -> None:
        """The GIC may have an interrupt for this CPU: wake it from ``wfi``."""
        with self._cond:
            self._kicked = True
            self._cond.notify_all()

    def set_paused(self, paused: bool) -> None:
        """Hold the vCPU at its next slice end or machine call (``True``), or let it go on."""
        with self._cond:
            self._paused = paused
            self._cond.notify_all()

    def wait_until_stopped(self, timeout: float) -> bool:
        """After pausing: wait until the vCPU executes nothing (or waits for the machine)."""
        if self.thread is threading.current_thread():
            return True
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._in_engine or self._blocked_on_machine or self._held, timeout
            )

    # -- the host thread ----------------------------------------------------------------------

    def _main(self, ready: threading.Event, startup_errors: list[BaseException]) -> None:
        try:
            context = self._pool.register(self.index, self.engine.id, self.engine.tb_size)
        except BaseException as exc:
            startup_errors.append(exc)
            ready.set()
            return
        self.context = context
        self.thread_id = threading.get_native_id()
        ready.set()
        try:
            self._loop()
        except BaseException as exc:  # a bug in the loop itself: report, never hang
            _log.exception("CPU %d: vCPU thread failed", self.index)
            self._fault(None, exc)
        finally:
            self._pool.unregister(context)
            self.context = None

    def _may_run(self, waiting_for_interrupt: bool) -> bool:
        if not self._powered or self._paused:
            return False
        return self._start is not None or not waiting_for_interrupt or self._kicked

    def _loop(self) -> None:
        waiting_for_interrupt = False
        while True:
            with self._cond:
                while not self._quit and not self._may_run(waiting_for_interrupt):
                    self._cond.wait()
                if self._quit:
                    return
                start, self._start = self._start, None
                epoch = self._epoch
                self._kicked = False
            try:
                if start is not None:
                    waiting_for_interrupt = False
                    self.engine.reset(*start)
                    self._call_machine(epoch, self._machine.vcpu_started, self.index)
                if waiting_for_interrupt:
                    if not self._irq_line():
                        continue  # a kick for someone else's benefit: sleep on
                    waiting_for_interrupt = False
                if self._irq_line() and self.engine.take_irq():
                    self.irqs_taken += 1
                # WFI completes at once when an interrupt is pending, even a masked one.
                waiting_for_interrupt = self._run(epoch) and not self._irq_line()
            except _Aborted:
                continue

    def _run(self, epoch: int) -> bool:
        """Run one slice; ``True`` if it ended because the guest executed ``wfi``."""
        with self._cond:
            if (self._epoch != epoch or self._quit or self._paused or not self._powered
                    or self._kicked):
                return False
            self._in_engine = True
            self._run_epoch = epoch
        error: BaseException | None = None
        try:
            self.engine.run(self.slice_instructions)
        except _Aborted:
            pass
        except BaseException as exc:
            error = exc
        finally:
            with self._cond:
                self._in_engine = False
                current = self._epoch == epoch
                kicked = self._kicked
                self._cond.notify_all()
        if error is not None:
            if current:
                self._fault(epoch, self._explain(error))
            return False
        if not current or kicked:
            return False
        try:
            # A slice that used up its budget can also end right after a wfi; then the
            # vCPU waits for the next kick, which is what a spurious-free wfi would do.
            return self.engine.instruction_at(self.engine.pc - 4) == WFI
        except UcError:
            return False

    def _irq_line(self) -> bool:
        return self._machine.gic.irq_pending(self.index)

    def _fault(self, epoch: int | None, error: BaseException) -> None:
        with self._cond:
            if epoch is not None and self._epoch != epoch:
                return
            self._powered = False
            self._start = None
            self._epoch += 1
        self.faults += 1
        try:
            self._call_machine(None, self._machine.vcpu_fault, self.index, error)
        except _Aborted:
            _log.warning("CPU %d stopped while exiting: %s", self.index, error)

    def _explain(self, error: BaseException) -> BaseException:
        if not isinstance(error, UcError):
            return error  # ours (VcpuFault) or a bug in a hook: the original error
        where = ""
        if self._invalid_access is not None:
            access, addr, size = self._invalid_access
            self._invalid_access = None
            where = f": {_access_name(access)} of {size} bytes at {addr:#x}"
        try:
            pc = f" (pc {self.engine.pc:#x})"
        except UcError:
            pc = ""
        fault = VcpuFault(f"{error}{where}{pc}")
        fault.__cause__ = error
        return fault

    def _call_machine(self, epoch: int | None, fn: Callable[..., _T], *args: Any) -> _T:
        """Call ``fn`` holding the machine lock; ``_Aborted`` if this vCPU was stopped meanwhile.

        ``epoch`` ``None``: give up only when the thread is told to exit.
        """
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
            result = fn(*args)
        finally:
            lock.release()
        self._hold_while_paused(epoch)
        return result

    def _hold_while_paused(self, epoch: int | None) -> None:
        with self._cond:
            while self._paused and not self._quit and (epoch is None or self._epoch == epoch):
                self._held = True
                self._cond.notify_all()
                self._cond.wait()
            self._held = False

    def _check_current(self, epoch: int | None) -> None:
        with self._cond:
            if self._quit or (epoch is not None and self._epoch != epoch):
                raise _Aborted

    # -- GuestExits: hooks, on this vCPU's thread inside Engine.run() -------------------------

    def _guest_access(self, default: _T, fn: Callable[..., _T], *args: Any) -> _T:
        def access() -> _T:
            try:
                return fn(*args)
            except GicAccessError:
                raise
            except GuestError as exc:  # a bad access: reported, reads as zero, writes ignored
                self._machine.guest_error(f"CPU {self.index} (pc {self.engine.pc:#x}): {exc}")
                return default

        return self._call_machine(self._run_epoch, access)

    def mmio_read(self, addr: int, size: int) -> int:
        """Guest MMIO read: the machine's device model answers."""
        return self._guest_access(0, self._machine.mmio_read, addr, size, self.index)

    def mmio_write(self, addr: int, size: int, value: int) -> None:
        """Guest MMIO write to the machine's device model."""
        self._guest_access(None, self._machine.mmio_write, addr, size, value, self.index)

    def unmapped(self, access: int, addr: int, size: int) -> None:
        """Remember the access for the fault report that follows."""
        self._invalid_access = (access, addr, size)

    def exception(self, intno: int) -> None:
        """Emulate ``hvc #0`` (PSCI) and ``ICC_*`` accesses; anything else stops the vCPU."""
        engine = self.engine
        pc = engine.pc
        if intno == EXCP_UDEF:
            word = engine.instruction_at(pc)
            immediate = hvc_immediate(word)
            if immediate is not None:
                self._hvc(immediate, pc, pc + 4)
                return
            access = decode_sysreg(word)
            if access is not None and access.encoding in ICC_SYSREGS:
                self._icc(access, pc)
                return
            what = f" ({access})" if access is not None else ""
            raise VcpuFault(f"undefined instruction {word:#010x}{what} at pc {pc:#x}")
        if intno == EXCP_HVC:  # a CPU model that traps HVC itself: PC is already past it
            immediate = hvc_immediate(engine.instruction_at(pc - 4))
            self._hvc(immediate if immediate is not None else -1, pc - 4, pc)
            return
        if intno == EXCP_SMC:
            raise VcpuFault(
                f"smc at pc {pc - 4:#x}: this machine's PSCI conduit is hvc #0 (FADT "
                "ARM boot flags); smc is not implemented"
            )
        name = EXCEPTION_NAMES.get(intno, f"exception {intno}")
        raise VcpuFault(
            f"{name} at pc {pc:#x}: synchronous exceptions are not delivered to the guest"
        )

    def _hvc(self, immediate: int, pc: int, next_pc: int) -> None:
        if immediate != PSCI_IMMEDIATE:
            raise VcpuFault(f"hvc #{immediate} at pc {pc:#x}: the PSCI conduit is hvc #0")
        engine = self.engine
        function_id, *args = (engine.x(n) for n in range(4))
        epoch = self._run_epoch
        try:
            result = self._call_machine(epoch, self._machine.psci_call, self.index,
                                        function_id, *args)
        except VcpuhpError as exc:
            raise VcpuFault(f"PSCI call {function_id:#x} at pc {pc:#x} failed: {exc}") from exc
        with self._cond:
            current = self._epoch == epoch
        if not current:  # CPU_OFF, SYSTEM_OFF or SYSTEM_RESET took this vCPU down
            engine.stop_from_exception_hook()
            return
        engine.set_x(0, to_register(result))
        engine.pc = next_pc

    def _icc(self, access: SysregAccess, pc: int) -> None:
        name = ICC_SYSREGS[access.encoding]
        engine = self.engine
        if access.read:
            engine.set_x(access.rt, self._guest_access(0, self._machine.sysreg_read,
                                                       self.index, name))
        else:
            self._guest_access(None, self._machine.sysreg_write, self.index, name,
                               engine.x(access.rt))
        engine.pc = pc + 4
