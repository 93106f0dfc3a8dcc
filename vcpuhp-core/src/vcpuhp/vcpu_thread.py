"""A backend vCPU run by a host thread of its own: its requests, its life cycle, its machine calls.

tcg-unicorn and kvm, and most accelerators a third party would add, give each
realized vCPU a host thread that executes the guest and serves what the guest
does by calling into the machine. What that thread must get right does not
depend on the accelerator, and :class:`ThreadedVcpu` does it once; a backend
subclasses it and supplies the accelerator's two parts: *run the guest until
something needs the thread* (:meth:`ThreadedVcpu._run_guest`) and *make a
running guest return* (:meth:`ThreadedVcpu._stop_guest`: KVM's
``immediate_exit`` plus a signal, Unicorn's ``uc_emu_stop``).

**Requests never block.** :meth:`~ThreadedVcpu.power_on`,
:meth:`~ThreadedVcpu.power_off`, :meth:`~ThreadedVcpu.set_paused` and
:meth:`~ThreadedVcpu.stop_thread` record what is wanted under the vCPU's
condition, stop a running guest and return (``stop_thread`` then joins the
thread). The machine may call them with its lock held, from any thread, the
vCPU's own included (PSCI ``CPU_OFF`` arrives inside the vCPU's own call):
the contract's *non-blocking* and *lock-power-off* rules.

**Epochs.** Every change of power state (power on, power off, exit, a fault)
bumps the vCPU's *epoch*. The thread notes the epoch with each request it
takes; finding it moved later means the vCPU was stopped or reset meanwhile,
and the thread does nothing more for that request.

**Machine calls can be abandoned.** The thread calls into the machine only
through :meth:`~ThreadedVcpu._call_machine`. It waits for the machine lock
with :meth:`~vcpuhp.machine_lock.MachineLock.acquire_unless`, and gives the
call up (:class:`Abandoned`) once its epoch moved or it was told to exit;
every request that does that wakes the wait
(:meth:`~vcpuhp.machine_lock.MachineLock.wake_waiters`), so nothing polls.
Eject holds the machine lock while it joins the ejected vCPU's thread, and
pause holds it while it waits for every vCPU to stop: neither waits for a
thread that waits for it (*lock-unrealize*). A call that completes while the
vCPU is paused holds the thread there until resume, so it executes nothing
more.

**Pause.** :meth:`~ThreadedVcpu.set_paused` then
:meth:`~ThreadedVcpu.wait_until_stopped` (for a whole backend:
:func:`pause_vcpus`, :func:`resume_vcpus`). A vCPU counts as stopped when it
executes no guest code, waits for the machine lock, or is held after a
machine call.

The thread's loop::

    wait until the vCPU may run (powered on, not paused) or must exit
    take the pending start (if any) and the epoch
    on a start: _reset_guest(entry point, args), then machine.vcpu_started(index)
    _run_guest(epoch): execute between _enter_guest and _leave_guest, serve what happened
    Abandoned: back to the top; any other exception: the vCPU stops (VCPU_FAULT), the loop goes on

Locks: the thread never holds the vCPU's condition while it calls the
machine, and the machine never needs a vCPU's condition to make progress. The
condition is reentrant: a subclass guards its own fields with it and may
extend a guarded step atomically (``with self._cond: if not
self._enter_guest(epoch): ...``). The hooks called with it held
(:meth:`~ThreadedVcpu._stop_guest`, :meth:`~ThreadedVcpu._may_run`,
:meth:`~ThreadedVcpu._take_work`) must not block or call the machine.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from vcpuhp.backend import BackendVcpu
from vcpuhp.errors import BackendError
from vcpuhp.topology import CpuSlot

if TYPE_CHECKING:
    from vcpuhp.machine import VirtMachine

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

Start = tuple[int, tuple[int, ...]]
"""A pending start: the entry point and the values for x0, x1, ..."""


class Abandoned(Exception):
    """A machine call was given up: the vCPU was powered off, reset or told to exit meanwhile.

    Only the vCPU's own thread sees it: :meth:`ThreadedVcpu._call_machine`
    raises it and the thread's loop catches it. It is deliberately not a
    :class:`~vcpuhp.errors.VcpuhpError`, so handlers of machine errors let it through.
    """


class ThreadedVcpu(BackendVcpu, ABC):
    """A backend vCPU executed by a host thread of its own while it is realized.

    :meth:`start_thread` at ``realize_vcpu`` (the vCPU waits, powered off),
    :meth:`stop_thread` at ``unrealize_vcpu`` (the thread has ended when it
    returns); :meth:`power_on`, :meth:`power_off` and :meth:`set_paused`
    from the backend's methods of the same names. A subclass implements
    :meth:`_run_guest` and :meth:`_stop_guest`, usually :meth:`_reset_guest`,
    and the other hooks as it needs.
    """

    label: ClassVar[str] = "backend"
    """How messages name the backend (``"kvm: CPU 3 ..."``)."""
    thread_name_prefix: ClassVar[str] = "vcpuhp-cpu"
    """The host thread is called this plus the CPU index."""
    join_timeout: ClassVar[float] = 60.0
    """Seconds :meth:`stop_thread` waits for the thread to exit."""

    def __init__(self, slot: CpuSlot, machine: VirtMachine) -> None:
        super().__init__(slot)
        self._machine = machine
        self._cond = threading.Condition()  # an RLock: subclasses nest guarded steps
        # Guarded by _cond:
        self._powered = False
        self._start: Start | None = None
        self._epoch = 0
        self._quit = False
        self._paused = False
        self._executing = False
        self._blocked_on_machine = False
        self._held = False
        self.thread: threading.Thread | None = None
        self.thread_id: int | None = None
        """Native id of the host thread (QMP ``query-cpus-fast`` ``thread-id``)."""
        self.faults = 0
        """How often this vCPU stopped on an error (``VCPU_FAULT``)."""

    @property
    def index(self) -> int:
        """The CPU index."""
        return self.slot.index

    @property
    def thread_alive(self) -> bool:
        """Whether the host thread exists and runs."""
        return self.thread is not None and self.thread.is_alive()

    # -- life cycle: realize / unrealize (these two wait for the thread) --------------------

    def start_thread(self, paused: bool) -> None:
        """Start the host thread, powered off (held if ``paused``); returns once it runs.

        An exception from :meth:`_thread_started` on the new thread is raised
        here, and there is no thread then.
        """
        if self.thread is not None:
            raise BackendError(f"{self.label}: CPU {self.index} already has a host thread")
        with self._cond:
            self._quit = False
            self._paused = paused
            self._powered = False
            self._start = None
            self._epoch += 1
        ready = threading.Event()
        startup_errors: list[BaseException] = []
        thread = threading.Thread(target=self._main, args=(ready, startup_errors), daemon=True,
                                  name=f"{self.thread_name_prefix}{self.index}")
        self.thread = thread
        thread.start()
        ready.wait()
        if startup_errors:
            thread.join()
            self.thread = None
            raise startup_errors[0]

    def stop_thread(self) -> None:
        """Make the host thread exit and join it (nothing to do without one).

        The thread gives up a machine call it is waiting to make, so the
        caller may hold the machine lock (eject does).
        """
        thread = self.thread
        if thread is None:
            return
        if thread is threading.current_thread():
            raise BackendError(f"{self.label}: CPU {self.index} cannot join its own thread")
        with self._cond:
            self._quit = True
            self._powered = False
            self._start = None
            self._epoch += 1
            self._wants_attention()
        self._machine.lock.wake_waiters()  # it may be waiting for the lock this thread holds
        thread.join(self.join_timeout)
        if thread.is_alive():
            raise BackendError(f"{self.label}: CPU {self.index}'s thread did not exit within "
                               f"{self.join_timeout:g}s")
        self.thread = None
        self.thread_id = None

    # -- requests, from any thread (never block) -------------------------------------------

    def power_on(self, entry_point: int, args: Sequence[int]) -> None:
        """Reset the vCPU and start it at ``entry_point`` with ``args`` in x0, x1, ...

        The thread resets it (:meth:`_reset_guest`) and reports
        :meth:`~vcpuhp.machine.VirtMachine.vcpu_started`.
        """
        with self._cond:
            if self.thread is None or self._quit:
                raise BackendError(f"{self.label}: CPU {self.index} is not realized")
            self._powered = True
            self._start = (entry_point, tuple(args))
            self._epoch += 1
            self._wants_attention()
        self._machine.lock.wake_waiters()  # a call it was waiting to make is void now

    def power_off(self) -> None:
        """Stop executing; the thread leaves the guest and waits for the next start."""
        with self._cond:
            self._powered = False
            self._start = None
            self._epoch += 1
            self._wants_attention()
        self._machine.lock.wake_waiters()  # a call it was waiting to make is void now

    def set_paused(self, paused: bool) -> None:
        """Hold the vCPU at its next stop or machine call (``True``), or let it run again."""
        with self._cond:
            self._paused = paused
            if paused:
                self._wants_attention()
            else:
                self._cond.notify_all()

    def wait_until_stopped(self, timeout: float) -> bool:
        """After :meth:`set_paused`: wait until the vCPU executes no guest code, waits for the
        machine lock or is held after a machine call; ``False`` if ``timeout`` passed first."""
        if self.thread is threading.current_thread():
            return True
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._executing or self._blocked_on_machine or self._held, timeout
            )

    def _wants_attention(self) -> None:
        """A request changed something the thread must see: stop the guest if it runs, and
        wake the thread if it waits (``_cond`` held)."""
        if self._executing:
            self._stop_guest()
        self._cond.notify_all()

    # -- what a subclass supplies --------------------------------------------------------------

    @abstractmethod
    def _run_guest(self, epoch: int) -> None:
        """On the thread: run the guest until something needs the thread, and serve it.

        Execute only between :meth:`_enter_guest` (which may say no: return
        then) and :meth:`_leave_guest`; serve exits with :meth:`_call_machine`.
        Return as soon as :meth:`_stop_guest` asks; the loop calls this again
        while the vCPU may run, so a guest with nothing to do waits here.
        Raising :class:`Abandoned` ends this run quietly; any other exception
        stops the vCPU with ``VCPU_FAULT`` (:meth:`_fault`).
        """

    @abstractmethod
    def _stop_guest(self) -> None:
        """Make the running guest return to the thread soon (``_cond`` held, while
        ``_executing``; from any thread). Must not block."""

    def _reset_guest(self, entry_point: int, args: tuple[int, ...]) -> None:
        """On the thread, for a start: reset the registers, PC ``entry_point``, x0.. ``args``."""

    def _thread_started(self) -> None:
        """First thing on the new thread; an exception makes :meth:`start_thread` fail."""

    def _thread_exiting(self) -> None:
        """Last thing on the thread (only after :meth:`_thread_started` succeeded)."""

    def _on_fault(self, error: BaseException) -> BaseException:
        """The vCPU just stopped on ``error`` (powered off): undo what the backend keeps running
        for it, and return what to report to the machine (``error`` itself by default)."""
        return error

    def _may_run(self) -> bool:
        """Whether the thread may take work now (``_cond`` held): powered on and not paused."""
        return self._powered and not self._paused

    def _wait_until_runnable(self) -> None:
        """Wait until :meth:`_may_run` or the thread must exit (the loop re-checks both)."""
        with self._cond:
            while not self._quit and not self._may_run():
                self._cond.wait()

    def _take_work(self) -> tuple[int, Start | None]:
        """Take the pending start (if any) with the current epoch (``_cond`` held)."""
        start, self._start = self._start, None
        return self._epoch, start

    # -- the thread ----------------------------------------------------------------------------

    def _main(self, ready: threading.Event, startup_errors: list[BaseException]) -> None:
        try:
            self._thread_started()
        except BaseException as exc:
            startup_errors.append(exc)
            ready.set()
            return
        self.thread_id = threading.get_native_id()
        ready.set()
        try:
            self._loop()
        except BaseException as exc:  # a bug in the loop or a hook: report, never hang
            _log.exception("%s: CPU %d: vCPU thread failed", self.label, self.index)
            self._fault(None, exc)
        finally:
            self._thread_exiting()

    def _loop(self) -> None:
        while (work := self._next_work()) is not None:
            epoch, start = work
            try:
                if start is not None:
                    self._reset_guest(*start)
                    self._call_machine(epoch, self._machine.vcpu_started, self.index)
                self._run_guest(epoch)
            except Abandoned:
                continue
            except Exception as exc:
                self._fault(epoch, exc)

    def _next_work(self) -> tuple[int, Start | None] | None:
        """Wait for work: ``(epoch, start or None)``, or ``None`` once the thread must exit."""
        while True:
            self._wait_until_runnable()
            with self._cond:
                if self._quit:
                    return None
                if self._may_run():  # else it changed between the wait and here
                    return self._take_work()

    def _enter_guest(self, epoch: int) -> bool:
        """Mark the vCPU executing, unless a request came after ``epoch`` was taken (then
        ``False``: do not execute). From :meth:`_run_guest`, right before it executes."""
        with self._cond:
            if self._epoch != epoch or self._quit or self._paused or not self._powered:
                return False
            self._executing = True
            return True

    def _leave_guest(self, epoch: int) -> bool:
        """The guest returned (after :meth:`_enter_guest`); whether ``epoch`` is still current."""
        with self._cond:
            self._executing = False
            self._cond.notify_all()
            return self._epoch == epoch

    def _is_current(self, epoch: int) -> bool:
        """Whether nothing powered off, reset or stopped the vCPU since ``epoch`` was taken."""
        with self._cond:
            return self._epoch == epoch  # exiting moves it too

    def _check_current(self, epoch: int | None) -> None:
        """:class:`Abandoned` if the thread must exit or (``epoch`` given) the epoch moved."""
        with self._cond:
            if self._quit or (epoch is not None and self._epoch != epoch):
                raise Abandoned

    def _call_machine(self, epoch: int | None, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` with the machine lock held, unless the vCPU was stopped meanwhile.

        Gives the call up with :class:`Abandoned` once the epoch moved from
        ``epoch`` or the thread must exit (``epoch`` ``None``: only the
        latter). While the vCPU is paused, the thread stays here after the
        call until resume. Never call it holding ``_cond``.
        """
        lock = self._machine.lock
        if not lock.acquire(blocking=False):
            with self._cond:
                self._blocked_on_machine = True
                self._cond.notify_all()
            try:
                # The holder may be joining this thread (eject): wait until it releases the
                # lock, or until this vCPU is powered off or told to exit (those wake us). The
                # flags are read without _cond on purpose: the check runs under the lock's own
                # internal lock.
                if not lock.acquire_unless(lambda: self._quit or (
                        epoch is not None and self._epoch != epoch)):
                    raise Abandoned
            finally:
                with self._cond:
                    self._blocked_on_machine = False
                    self._cond.notify_all()
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
            if self._held:
                self._held = False
                self._cond.notify_all()

    def _fault(self, epoch: int | None, error: BaseException) -> None:
        """Stop this vCPU (powered off) and tell the machine (``VCPU_FAULT``).

        An error of an earlier epoch is dropped: the vCPU was powered off or
        reset meanwhile, so the error is moot.
        """
        with self._cond:
            if epoch is not None and self._epoch != epoch:
                return
            self._powered = False
            self._start = None
            self._epoch += 1
        self.faults += 1
        reason = self._on_fault(error)
        try:
            self._call_machine(None, self._machine.vcpu_fault, self.index, reason)
        except Abandoned:
            _log.warning("%s: CPU %d stopped while exiting: %s", self.label, self.index, error)


def pause_vcpus(vcpus: Iterable[ThreadedVcpu], timeout: float) -> None:
    """A backend's ``pause``: hold every vCPU, then wait until none executes guest code.

    All are asked first, so they stop in parallel; each wait is bounded by
    ``timeout`` seconds. :class:`~vcpuhp.errors.BackendError` names the first
    vCPU still executing.
    """
    held = list(vcpus)
    for vcpu in held:
        vcpu.set_paused(True)
    for vcpu in held:
        if not vcpu.wait_until_stopped(timeout):
            raise BackendError(f"{vcpu.label}: CPU {vcpu.index} did not stop executing guest "
                               f"code within {timeout:g}s of pause")


def resume_vcpus(vcpus: Iterable[ThreadedVcpu]) -> None:
    """A backend's ``resume``: let every vCPU run again."""
    for vcpu in vcpus:
        vcpu.set_paused(False)


__all__ = ["Abandoned", "Start", "ThreadedVcpu", "pause_vcpus", "resume_vcpus"]
