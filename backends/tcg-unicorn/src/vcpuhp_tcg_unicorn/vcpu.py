"""A vCPU: one Unicorn engine driven by one host thread.

The thread runs the engine with no instruction budget (``emu_start`` until
something stops it) and looks at what it was asked to do whenever a run
ends. Anything that needs the thread's attention -- ``power_off``, ``kick``
(a new interrupt), pause, unrealize -- updates fields under the vCPU's
condition and, if the engine is running, *requests a stop*
(:meth:`Engine.request_stop`). Unicorn is set up so that such a stop lands
only at a translation-block boundary (:mod:`~vcpuhp_tcg_unicorn.stops`):
exact, whichever thread asks. A :class:`~vcpuhp_tcg_unicorn.stops.StopRetrier`
repeats a stop that raced with the start of a run. When exact asynchronous
stops are not available, runs fall back to instruction-count slices.

Threads and locks: the host thread, its requests, the epochs and the
abandonable machine calls are :class:`vcpuhp.vcpu_thread.ThreadedVcpu`'s
(requests never block; every call into the machine -- MMIO, PSCI, ``ICC_*``,
``vcpu_started``, ``vcpu_fault`` -- gives up once the vCPU was powered off or
told to exit, woken without polling; the vCPU thread never holds its
condition while it calls the machine). This module supplies the Unicorn parts:

* *stopping a running guest*: :meth:`Engine.request_stop`, repeated by the
  :class:`~vcpuhp_tcg_unicorn.stops.StopRetrier` when it raced with the start
  of the run (or, with slices, nothing: the slice ends soon);
* *running the guest*: one engine run, then what it ended on. A hook that went
  to the machine compares epochs when it comes back: if its own vCPU was
  powered off or reset meanwhile (``CPU_OFF``, ``SYSTEM_RESET``) it ends the
  run from the exception hook and leaves the registers alone;
* while the machine is paused, a vCPU that completes a machine call inside a
  hook waits there (the access done, the instruction not yet retired) until
  resume, so it executes nothing more.

Interrupts: before every run the thread drives the engine's IRQ input from
the GIC (:mod:`~vcpuhp_tcg_unicorn.irq_line`); QEMU itself then takes the
interrupt at the first instruction where ``PSTATE.I`` allows it (right after
``msr daifclr`` or ``eret``), and ``wfi`` completes at once while it is up.
A new interrupt for a running vCPU (a *kick*) ends its run so the input is
driven again; one that falls during a run is lowered from the hook that
lowered it. The vCPU's own ``ICC_*`` accesses drive it from their hook
(:meth:`UnicornVcpu.gic_read`), and a kick caused by its own MMIO access ends
the run only if the GIC then has an interrupt for it. After ``wfi`` with the
input down the thread sleeps on its condition, with no timeout, until a kick;
the generic timer (:mod:`~vcpuhp_tcg_unicorn.timer`) kicks it through the GIC
when it expires.

Synchronous exceptions: Unicorn never enters the guest's vector table for
them, so the backend does, with the syndrome the Arm ARM prescribes
(:mod:`~vcpuhp_tcg_unicorn.faults`): from the interrupt hook, or after a run
that ended on an unbacked physical address. ``hvc`` (the PSCI conduit),
TLB and cache maintenance and the GIC's ``ICC_*`` registers are emulated
instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from vcpuhp.errors import GicAccessError, GuestError, VcpuhpError
from vcpuhp.gic import ICC_SYSREGS
from vcpuhp.psci import to_register
from vcpuhp.topology import CpuSlot
from vcpuhp.vcpu_thread import Abandoned, Start, ThreadedVcpu
from vcpuhp_tcg_unicorn.binding import UcError
from vcpuhp_tcg_unicorn.binding import const as unicorn_const
from vcpuhp_tcg_unicorn.coherence import CoherenceDomain, maintenance_for
from vcpuhp_tcg_unicorn.decode import (
    WFI,
    decode_system,
    hvc_immediate,
)
from vcpuhp_tcg_unicorn.engine import (
    EXCEPTION_NAMES,
    EXCP_HVC,
    EXCP_UDEF,
    Engine,
    RamMapping,
    Sysreg,
)
from vcpuhp_tcg_unicorn.execution import ExecutionToken
from vcpuhp_tcg_unicorn.faults import VcpuFault, external_abort, fetch, from_exception
from vcpuhp_tcg_unicorn.hostthread import reduce_timer_slack
from vcpuhp_tcg_unicorn.pool import TranslationContext, TranslationContextPool
from vcpuhp_tcg_unicorn.stops import StopRetrier
from vcpuhp_tcg_unicorn.syndrome import SyncException, undefined
from vcpuhp_tcg_unicorn.timer import (
    COUNTER_PERIOD_NS,
    TIMER_SYSREGS,
    GenericTimer,
    TimerService,
    counter,
)

if TYPE_CHECKING:
    from vcpuhp.machine import VirtMachine

_T = TypeVar("_T")

DEFAULT_SLICE: Final = 100_000
"""Guest instructions per ``emu_start`` when exact asynchronous stops are not
available (about a millisecond): then the latency of interrupts, pause and
power-off for a busy vCPU."""
JOIN_TIMEOUT: Final = 10.0
_CVAL_REGISTERS: Final = {0: (3, 3, 14, 3, 2), 1: (3, 3, 14, 2, 2)}
_SCTLR_EL1: Final = (3, 0, 1, 0, 0)
_SCTLR_UCI: Final = 1 << 26
"""``SCTLR_EL1.UCI``: EL0 may execute ``IC IVAU`` and ``DC CVAU`` (and other DC ops)."""
_EOI_REGISTERS: Final = frozenset({"ICC_EOIR1_EL1", "ICC_DIR_EL1"})
_ACKNOWLEDGE_REGISTERS: Final = frozenset({"ICC_IAR1_EL1", "ICC_IAR0_EL1"})
_FIRST_SPECIAL_INTID: Final = 1020
"""INTIDs 1020-1023 are special (spurious): nothing was acknowledged."""

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


class UnicornVcpu(ThreadedVcpu):
    """One slot's engine, host thread, timers and run state."""

    label = "tcg-unicorn"
    thread_name_prefix = "vcpuhp-cpu"
    join_timeout = JOIN_TIMEOUT

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
        timers: TimerService,
        retrier: StopRetrier,
        slice_instructions: int = DEFAULT_SLICE,
        async_stops: bool = True,
        spare: Engine | None = None,
        coherence: CoherenceDomain | None = None,
        token: ExecutionToken | None = None,
    ) -> None:
        super().__init__(slot, machine)
        self._coherence = coherence if coherence is not None else CoherenceDomain()
        self._token = token if token is not None else ExecutionToken(serial=False)
        self._pool = pool
        self._retrier = retrier
        if spare is not None:  # an engine an unplugged vCPU left behind (same options)
            spare.rebind(mpidr=slot.mpidr, exits=self)
            self.engine = spare
        else:
            self.engine = Engine(cpu_model=cpu_model, tb_size=tb_size, ram=ram, mmio=mmio,
                                 mpidr=slot.mpidr, exits=self, block_boundary_stops=async_stops)
        self.slice_instructions = 0 if self.engine.exact_async_stops else slice_instructions
        """Instructions per run; 0 (exact asynchronous stops) runs until stopped."""
        self.timer = GenericTimer(timers, self._set_timer_line)
        # Guarded by _cond (besides ThreadedVcpu's fields):
        self._kicked = False
        self._run_serial = 0
        self._stop_requested_for = -1
        self._in_wfi = False
        # Owned by the vCPU thread.
        self._waiting_for_interrupt = False
        """The last run ended on ``wfi`` with no interrupt pending: run again only when kicked."""
        self._run_epoch = 0
        self._hook_stopped = False
        self._in_access = False
        """An MMIO or ``ICC_*`` access of this vCPU is in the machine (read by :meth:`kick`)."""
        self._kicked_itself = False
        """That access kicked this vCPU: the hook decides once the access is done."""
        self._after_run: Callable[[], None] | None = None
        self._invalid_access: tuple[int, int, int, int] | None = None
        self._at_faulting_store: Any = None
        """Registers at a store to unbacked memory; set, the rest of the run is void."""
        self._last_taken: SyncException | None = None
        self._entered_at = -1
        self.context: TranslationContext | None = None
        self.irqs_taken = 0
        self.exceptions_taken = 0
        self.stops_requested = 0
        self.maintenance_done = 0
        """TLB and cache maintenance instructions emulated (see the coherence module)."""

    @property
    def sleeping_in_wfi(self) -> bool:
        """Whether the thread sleeps because its guest executed ``wfi`` (nothing pending)."""
        with self._cond:
            return self._in_wfi

    # -- life cycle: the generic timer goes with the thread ------------------------------------

    def stop_thread(self) -> None:
        """Make the host thread exit and join it (it unregisters its context on the way)."""
        if self.thread is None:
            return
        super().stop_thread()
        self.timer.reset()

    # -- control, from any thread (never blocks) ------------------------------------------

    def _stop_guest(self) -> None:
        """End the current run at its next block boundary (``_cond`` held, engine running)."""
        if self._stop_requested_for == self._run_serial:
            return
        self._stop_requested_for = self._run_serial
        if self.slice_instructions:
            return  # slices: the thread looks at its requests when the slice ends
        self.stops_requested += 1
        self.engine.request_stop()
        if threading.current_thread() is not self.thread:
            serial = self._run_serial
            self._retrier.watch(lambda: self._repeat_stop(serial))

    def _repeat_stop(self, serial: int) -> bool:
        """The retrier's call: stop run ``serial`` again if it is still going."""
        with self._cond:
            if not self._executing or self._run_serial != serial:
                return False
            self._stop_requested_for = serial
            self.engine.request_stop()
            return True

    def kick(self) -> None:
        """The GIC may have an interrupt for this CPU: wake it from ``wfi`` or stop its run.

        A kick from the vCPU's own MMIO or ``ICC_*`` access (the GIC re-evaluates after
        every write) is left to that access's hook, which knows better once it is done
        (:meth:`_after_access`): most of them find nothing pending and cost no stop.
        """
        if self._in_access and threading.current_thread() is self.thread:
            self._kicked_itself = True
            return
        with self._cond:
            self._kicked = True
            self._wants_attention()

    def _wants_attention(self) -> None:
        """Also make the thread look at the request if it waits for its turn to run."""
        super()._wants_attention()
        self._token.wake()

    def stop_running(self) -> None:
        """End the current run at its next block boundary, if the engine is running guest
        code; a vCPU in ``wfi`` or powered off is left as it is (coherence maintenance)."""
        with self._cond:
            if self._executing:
                self._stop_guest()

    # -- the host thread ----------------------------------------------------------------------

    def _thread_started(self) -> None:
        """Register the thread's translation context (the pool may be full: then no thread)."""
        self.context = self._pool.register(self.index, self.engine.id, self.engine.tb_size)
        reduce_timer_slack()  # it sleeps until its guest's timer deadlines

    def _thread_exiting(self) -> None:
        if self.context is not None:
            self._pool.unregister(self.context)
            self.context = None

    def _may_run(self) -> bool:
        if not super()._may_run():
            return False
        return self._start is not None or not self._waiting_for_interrupt or self._kicked

    def _wait_until_runnable(self) -> None:
        """Sleep on the condition until the vCPU may run or must exit.

        In ``wfi`` (and not paused) the thread also fires its own generic-timer
        deadlines (:meth:`GenericTimer.sleep`): it wakes at the earliest one, and
        raising the timer's line kicks it.
        """
        waiting_for_interrupt = self._waiting_for_interrupt
        while True:
            with self._cond:
                if self._quit or self._may_run():
                    return
                sleeping = waiting_for_interrupt and not self._paused
                deadline = self.timer.sleep() if sleeping else None
                self._in_wfi = waiting_for_interrupt
                try:
                    while not self._quit and not self._may_run():
                        if deadline is None or self._paused:
                            self._cond.wait()
                            continue
                        remaining_ns = (deadline - counter()) * COUNTER_PERIOD_NS
                        if remaining_ns <= 0:
                            break
                        self._cond.wait(remaining_ns / 1e9)
                finally:
                    self._in_wfi = False
                    if sleeping:  # raising a due line kicks this vCPU; paused: nothing fires
                        self.timer.wake(fire=not self._paused)

    def _take_work(self) -> tuple[int, Start | None]:
        self._kicked = False  # the run about to start drives the IRQ input afresh
        return super()._take_work()

    def _reset_guest(self, entry_point: int, args: tuple[int, ...]) -> None:
        self._waiting_for_interrupt = False
        self.timer.reset()
        self.engine.reset(entry_point, args)
        self._last_taken = None

    def _run_guest(self, epoch: int) -> None:
        line = self._sync_irq_line()
        if self._waiting_for_interrupt and not line:
            return  # a kick for someone else's benefit: sleep on
        # With the line up QEMU takes the interrupt as soon as PSTATE.I allows, and
        # wfi completes at once; with it down a wfi ends the run.
        self._waiting_for_interrupt = self._run(epoch)

    def _sync_irq_line(self) -> bool:
        """Drive the engine's IRQ input from the GIC (own thread: between runs or in a hook)."""
        line = self._irq_line()
        self.engine.irq_line.set(line)
        return line

    def _run(self, epoch: int) -> bool:
        """Run the engine once; ``True`` if the run ended because the guest executed ``wfi``
        (with no interrupt pending: otherwise ``wfi`` completes without ending the run).

        The run holds the machine's :class:`~vcpuhp_tcg_unicorn.execution.ExecutionToken`
        (``exec=serial``: one engine executes at a time); waiting for it, the vCPU is not
        in the engine (a pause does not wait for it) and gives up when it is powered
        off, reset, paused or told to exit.
        """
        if not self._token.acquire(self, self.stop_running, lambda: (
                self._quit or self._paused or self._epoch != epoch)):
            return False
        with self._cond:
            runnable = self._enter_guest(epoch)
            if runnable:
                # Kicked while it waited for its turn: drive the IRQ input again below rather
                # than give the turn up (kicks come every few ms: it would never run).
                kicked, self._kicked = self._kicked, False
                self._run_serial += 1
                self._run_epoch = epoch
        if not runnable:
            self._token.release(self)  # never under _cond: a waiter stops us holding its lock
            return False
        if kicked:
            self._sync_irq_line()  # a kick from now on stops the run
        self._hook_stopped = False
        self._after_run = None
        self._at_faulting_store = None
        self._invalid_access = None
        error: BaseException | None = None
        try:
            self.engine.run(self.slice_instructions)
        except Abandoned:
            pass
        except BaseException as exc:
            error = exc
        finally:
            with self._cond:
                current = self._leave_guest(epoch)
                stopped = self._stop_requested_for == self._run_serial
            self._token.release(self)
        after = self._pop_after_run()
        if error is not None:
            if current:
                self._deliver_or_fault(epoch, error)
            return False
        if after is not None and current:
            try:
                after()
            except VcpuFault as exc:
                self._fault(epoch, exc)
            return False
        if not current or stopped or self._hook_stopped:
            return False
        if not self.slice_instructions:
            return True  # nothing asked this run to end: the guest executed wfi
        return fetch(self.engine, self.engine.pc - 4) == WFI  # or the slice ran out

    def _pop_after_run(self) -> Callable[[], None] | None:
        after, self._after_run = self._after_run, None
        return after

    def _deliver_or_fault(self, epoch: int, error: BaseException) -> None:
        invalid, self._invalid_access = self._invalid_access, None
        at_store, self._at_faulting_store = self._at_faulting_store, None
        if isinstance(error, UcError) and invalid is not None:
            access, addr, _size, pc = invalid
            fetching = access == unicorn_const.UC_MEM_FETCH_UNMAPPED
            writing = access == unicorn_const.UC_MEM_WRITE_UNMAPPED
            if at_store is not None:
                self.engine.restore(at_store)  # undo what ran after the store (registers)
            try:
                self._take(external_abort(self.engine, fetching, writing, addr, pc))
                return
            except VcpuFault as exc:
                error = exc
        self._fault(epoch, self._explain(error, invalid))

    def _take(self, exception: SyncException) -> None:
        if self._in_fresh_vector():
            # The previous exception's vector faulted on its first instruction: it would
            # loop forever (QEMU does); stop the CPU and say why instead.
            assert self._last_taken is not None
            raise VcpuFault(self._undeliverable(self._last_taken, exception.what))
        self.engine.take_exception(exception)
        self._last_taken, self._entered_at = exception, self.engine.pc
        self.exceptions_taken += 1

    def _in_fresh_vector(self) -> bool:
        return self._last_taken is not None and self.engine.pc == self._entered_at

    @staticmethod
    def _undeliverable(exception: SyncException, why: str) -> str:
        return (f"cannot deliver {exception.what} (ESR {exception.esr:#x}) from pc "
                f"{exception.return_address:#x}: its vector faulted ({why})")

    def _irq_line(self) -> bool:
        return self._machine.gic.irq_pending(self.index)

    def _set_timer_line(self, intid: int, level: bool) -> None:
        self._machine.gic.set_ppi(self.index, intid, level)

    def _on_fault(self, error: BaseException) -> BaseException:
        self.timer.reset()  # a stopped CPU's timer fires nothing
        return error

    def _explain(self, error: BaseException,
                 invalid: tuple[int, int, int, int] | None) -> BaseException:
        if not isinstance(error, UcError):
            return error  # ours (VcpuFault) or a bug in a hook: the original error
        where = ""
        if invalid is not None:
            access, addr, size, _pc = invalid
            where = f": {_access_name(access)} of {size} bytes at {addr:#x}"
        try:
            pc = f" (pc {self.engine.pc:#x})"
        except UcError:
            pc = ""
        fault = VcpuFault(f"{error}{where}{pc}")
        fault.__cause__ = error
        return fault

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
        if self._at_faulting_store is not None:
            return 0  # after a store to unbacked memory in this block: void
        self._in_access = True
        try:
            return self._guest_access(0, self._machine.mmio_read, addr, size, self.index)
        finally:
            self._after_access()

    def mmio_write(self, addr: int, size: int, value: int) -> None:
        """Guest MMIO write to the machine's device model."""
        if self._at_faulting_store is not None:
            return  # after a store to unbacked memory in this block: void
        self._in_access = True
        try:
            self._guest_access(None, self._machine.mmio_write, addr, size, value, self.index)
        finally:
            self._after_access()
        if self.engine.irq_line.level:
            self._sync_irq_line()  # e.g. a GIC write that disabled the pending interrupt

    def _after_access(self) -> None:
        """The access of an MMIO hook is done: if it kicked this vCPU and the GIC now has
        an interrupt for it, end the run, so that the next one drives the IRQ input
        (raised inside the run, QEMU would see it only when it next leaves its chain of
        blocks)."""
        self._in_access = False
        if self._kicked_itself:
            self._kicked_itself = False
            if self._irq_line():
                self.kick()

    def unmapped(self, access: int, addr: int, size: int) -> None:
        """Remember the access and its PC: the run ends and the guest gets an external abort.

        Unicorn synced PC and every register to the accessing instruction before
        this hook. A read or fetch ends the run right there. A write is skipped and
        the rest of its translation block still runs before the run ends (the check
        that would end it at once is the one :mod:`~vcpuhp_tcg_unicorn.stops`
        switches off); so the registers are saved here and put back before the
        abort is taken, and the block's remaining MMIO accesses, system register
        writes and exceptions are voided. Its remaining stores to RAM do happen:
        that is the inexactness left (see the backend README).
        """
        if self._invalid_access is not None:
            return  # the first one is the abort; the rest of the block is void
        self._invalid_access = (access, addr, size, self.engine.pc)
        if access == unicorn_const.UC_MEM_WRITE_UNMAPPED:
            self._at_faulting_store = self.engine.snapshot()

    def sysreg_read(self, reg: Sysreg) -> int | None:
        """``CNT{V,P}_CTL_EL0`` with a live ``ISTATUS``; Unicorn answers the rest."""
        timer = TIMER_SYSREGS.get(reg)
        if timer is not None and timer[1] == "ctl":
            return self.timer.read_ctl(timer[0])
        return None

    def sysreg_write(self, reg: Sysreg, value: int) -> bool:
        """Timer writes arm the deadline; ``TVAL`` is stored as the ``CVAL`` it means."""
        if self._at_faulting_store is not None:
            return False  # void: no timer side effect (Unicorn's own copy is restored)
        timer = TIMER_SYSREGS.get(reg)
        if timer is None:
            return False
        which, register = timer
        cval = self.timer.write(which, register, value)
        if self.engine.irq_line.level:
            self._sync_irq_line()  # the timer's line fell (a rising one kicks this vCPU)
        if register == "tval":
            self.engine.uc.cpr_write(*_CVAL_REGISTERS[which], cval)
            return True
        return False  # Unicorn keeps its copy of CTL / CVAL as well

    def _defer(self, action: Callable[[], None]) -> None:
        """End the run from the exception hook and do ``action`` once ``emu_start`` returned.

        A hook must not write PC with ``uc_reg_write``: Unicorn then sets
        ``skip_sync_pc_on_exit``, which stays set for the rest of the run and may
        leave PC stale at a later stop. So PSCI calls and exception entries change PC
        between runs; only ``ICC_*`` accesses and maintenance instructions are
        retired inside the run, with ``uc_reg_write_batch`` (see the engine module).
        """
        self._after_run = action
        self._hook_stopped = True
        self.engine.stop_from_exception_hook()

    def _resume_at(self, pc: int) -> None:
        engine = self.engine
        self._defer(lambda: setattr(engine, "pc", pc))

    def _deliver(self, exception: SyncException) -> None:
        self._defer(lambda: self._take(exception))

    def exception(self, intno: int) -> None:
        """Emulate ``hvc`` (PSCI / SMCCC) and maintenance; deliver other exceptions to the guest.

        Every ``hvc`` at EL1 is a call to the machine's firmware whatever its
        immediate, as under QEMU ``virt`` and KVM: an unknown function returns
        ``NOT_SUPPORTED`` (-1) in x0 rather than faulting.
        """
        engine = self.engine
        if self._at_faulting_store is not None:  # void: the store's abort comes first
            self._hook_stopped = True
            engine.stop_from_exception_hook()
            return
        pc = engine.pc
        if intno == EXCP_UDEF:
            word = fetch(engine, pc)
            if word is not None and not engine.at_el0 and hvc_immediate(word) is not None:
                self._hvc(pc, pc + 4)
                return
            if word is not None and self._maintain(word, pc):
                return
            self._deliver(undefined(pc))
            return
        if intno == EXCP_HVC:  # a CPU model that traps HVC itself: PC is already past it
            self._hvc(pc - 4, pc)
            return
        exception = from_exception(engine, intno)
        if exception is None:
            name = EXCEPTION_NAMES.get(intno, f"exception {intno}")
            raise VcpuFault(f"{name} at pc {pc:#x}: not a synchronous exception the backend "
                            "can deliver")
        self._deliver(exception)

    def _hvc(self, pc: int, next_pc: int) -> None:
        engine = self.engine
        function_id, *args = (engine.x(n) for n in range(4))
        epoch = self._run_epoch
        try:
            result = self._call_machine(epoch, self._machine.psci_call, self.index,
                                        function_id, *args)
        except VcpuhpError as exc:
            raise VcpuFault(f"PSCI call {function_id:#x} at pc {pc:#x} failed: {exc}") from exc
        if not self._is_current(epoch):  # CPU_OFF, SYSTEM_OFF or SYSTEM_RESET took it down
            self._hook_stopped = True
            engine.stop_from_exception_hook()
            return
        engine.set_x(0, to_register(result))
        self._resume_at(next_pc)

    def _maintain(self, word: int, pc: int) -> bool:
        """TLB or PoU cache maintenance that the engine traps (see the coherence module):
        perform it for every engine it concerns; ``False`` if ``word`` is none of it."""
        instruction = decode_system(word)
        if instruction is None:
            return False
        engine = self.engine
        at_el0 = engine.at_el0
        uci = at_el0 and bool(engine.sysreg(_SCTLR_EL1) & _SCTLR_UCI)
        found = maintenance_for(instruction, el0=at_el0, uci=uci)
        if found is None:
            return False
        work, broadcast = found
        if broadcast:
            self._coherence.broadcast(engine.maintenance, work)
        elif work:
            engine.maintenance.post(work)
        self.maintenance_done += 1
        self.engine.apply_maintenance_and_continue_at(pc + 4)  # its own share, in this run
        return True

    def gic_read(self, reg: Sysreg) -> int:
        """``MRS`` of an ``ICC_*`` register, from the engine's hook: the machine's GIC
        answers, and the IRQ input follows at once (an acknowledge lowers it)."""
        if self._at_faulting_store is not None:
            return 0  # after a store to unbacked memory in this block: void
        name = ICC_SYSREGS[reg]
        self._in_access = True
        try:
            value = self._guest_access(0, self._machine.sysreg_read, self.index, name)
            if name in _ACKNOWLEDGE_REGISTERS and value < _FIRST_SPECIAL_INTID:
                self.irqs_taken += 1
        finally:
            self._in_access = self._kicked_itself = False
        self._sync_irq_line()
        return value

    def gic_write(self, reg: Sysreg, value: int) -> None:
        """``MSR`` of an ``ICC_*`` register, from the engine's hook; the IRQ input follows
        (an EOI of a still-high level-sensitive line, ``PMR`` or ``IGRPEN1`` may raise it:
        QEMU takes it as soon as the engine is back in its CPU loop, right after)."""
        if self._at_faulting_store is not None:
            return  # void
        name = ICC_SYSREGS[reg]
        self._in_access = True
        try:
            self._guest_access(None, self._machine.sysreg_write, self.index, name, value)
            if name in _EOI_REGISTERS:
                self.timer.refresh()  # a level-sensitive line still high pends again
        finally:
            self._in_access = self._kicked_itself = False
        self._sync_irq_line()
