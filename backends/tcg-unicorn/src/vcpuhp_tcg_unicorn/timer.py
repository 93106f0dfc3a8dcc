"""The Arm generic timer: one machine-wide counter, two timers per vCPU, PPIs 27 and 30.

Unicorn 2.1.4 implements the counter (``CNTVCT_EL0``/``CNTPCT_EL0`` read the
host's ``CLOCK_MONOTONIC`` in 16 ns ticks, ``CNTFRQ_EL0`` = 62.5 MHz, the same
in every engine since ``CNTVOFF_EL2`` is 0) and stores the timer registers,
but its ``gt_recalc_timer`` is compiled out: ``ISTATUS`` never sets and no
interrupt is raised. This module supplies that part. The backend's
MRS/MSR hooks report every access to ``CNT{V,P}_{CTL,CVAL,TVAL}_EL0``, and
the timer's PPI is raised through the machine's GIC (level-sensitive: the
line is high while ``ENABLE && !IMASK && count >= CVAL``).

Who notices a deadline: while a vCPU sleeps in ``wfi`` its own thread waits
for its earliest deadline and fires it itself (:meth:`GenericTimer.sleep` /
:meth:`GenericTimer.wake`): one thread wakes, the one that runs the guest
next. While it runs, a :class:`TimerService` thread keeps the deadlines in a
heap and fires them (raising the line kicks the running vCPU). A deadline
belongs to exactly one of the two at a time: the service skips the timers of
a sleeping owner and the owner hands back what it did not fire when it wakes.
Both threads wait with no timeout while no timer is armed, so an idle
machine costs nothing.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from vcpuhp.deadline_thread import DeadlineThread, Work
from vcpuhp_tcg_unicorn.hostthread import reduce_timer_slack

COUNTER_PERIOD_NS: Final = 16
"""Unicorn's counter: 62.5 MHz (QEMU's ``GTIMER_SCALE``)."""
COUNTER_FREQUENCY: Final = 1_000_000_000 // COUNTER_PERIOD_NS
PPI_VIRTUAL_TIMER: Final = 27
PPI_PHYSICAL_TIMER: Final = 30
CTL_ENABLE: Final = 1 << 0
CTL_IMASK: Final = 1 << 1
CTL_ISTATUS: Final = 1 << 2

VIRTUAL: Final = 0
PHYSICAL: Final = 1
TIMER_PPIS: Final = (PPI_VIRTUAL_TIMER, PPI_PHYSICAL_TIMER)

#: ``(op0, op1, CRn, CRm, op2)`` -> ``(timer, register)``; registers "ctl", "cval", "tval".
TIMER_SYSREGS: Final[dict[tuple[int, int, int, int, int], tuple[int, str]]] = {
    (3, 3, 14, 3, 1): (VIRTUAL, "ctl"),
    (3, 3, 14, 3, 2): (VIRTUAL, "cval"),
    (3, 3, 14, 3, 0): (VIRTUAL, "tval"),
    (3, 3, 14, 2, 1): (PHYSICAL, "ctl"),
    (3, 3, 14, 2, 2): (PHYSICAL, "cval"),
    (3, 3, 14, 2, 0): (PHYSICAL, "tval"),
}
_MASK64: Final = (1 << 64) - 1


def counter() -> int:
    """The machine-wide counter now (what every vCPU's ``CNTVCT_EL0`` reads)."""
    return time.monotonic_ns() // COUNTER_PERIOD_NS


def _signed32(value: int) -> int:
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value >> 31 else value


LineSetter = Callable[[int, bool], None]
"""``set_line(intid, level)``: drive a timer's PPI on the owning CPU's redistributor."""


@dataclass
class _Timer:
    ctl: int = 0
    cval: int = 0
    generation: int = 0
    level: bool = False


class TimerService(DeadlineThread):
    """Deadlines of every vCPU's timers, fired by one thread."""

    def __init__(self) -> None:
        super().__init__("vcpuhp-timers")
        self._heap: list[tuple[int, int, int, GenericTimer, int]] = []
        self._serial = 0
        self._held = False
        self.fired = 0
        self.wakeup_errors_ns: list[int] = []
        """How late each expiry was raised (ns after its deadline); the last 10,000."""

    def record(self, late_ns: int) -> None:
        """Count an expiry raised ``late_ns`` after its deadline (by the service or an owner)."""
        self.fired += 1
        self.wakeup_errors_ns.append(late_ns)
        if len(self.wakeup_errors_ns) > 10_000:
            del self.wakeup_errors_ns[:5_000]

    def owner_sleeps(self, timer: GenericTimer) -> None:
        """``timer``'s owner now fires its deadlines itself: if the service was waiting for
        one of them, it drops it now rather than waking at that deadline."""
        with self._cond:
            if self._heap and self._heap[0][3] is timer:
                self._cond.notify()

    def schedule(self, timer: GenericTimer, which: int, generation: int, deadline: int) -> None:
        """Fire ``timer``'s timer ``which`` at counter value ``deadline`` unless re-armed."""
        with self._cond:
            if self._closed:
                return
            self._serial += 1
            heapq.heappush(self._heap, (deadline, self._serial, which, timer, generation))
            if self._heap[0][1] == self._serial:
                self._cond.notify()

    def hold(self, held: bool) -> None:
        """While held (the machine is paused), expiries wait; they fire on release."""
        with self._cond:
            self._held = held
            self._cond.notify()

    def _thread_started(self) -> None:
        reduce_timer_slack()

    def _forget(self) -> None:
        self._heap.clear()

    def _next(self) -> tuple[Work | None, float | None]:
        heap = self._heap
        # Drop deadlines that were re-armed or whose owner fires them itself.
        while heap and not heap[0][3].is_current(heap[0][2], heap[0][4]):
            heapq.heappop(heap)
        if not heap or self._held:
            return None, None
        wait_ns = heap[0][0] * COUNTER_PERIOD_NS - time.monotonic_ns()
        if wait_ns > 0:
            return None, wait_ns / 1e9
        _, _, which, timer, generation = heapq.heappop(heap)
        return lambda: self._expire(timer, which, generation, -wait_ns), None

    def _expire(self, timer: GenericTimer, which: int, generation: int, late_ns: int) -> None:
        if timer.expire(which, generation):
            self.record(late_ns)


class GenericTimer:
    """One vCPU's virtual and physical timers."""

    def __init__(self, service: TimerService, set_line: LineSetter) -> None:
        self._service = service
        self._set_line = set_line
        self._lock = threading.Lock()
        self._timers = (_Timer(), _Timer())
        self._owner_sleeping = False

    def is_current(self, which: int, generation: int) -> bool:
        """Whether the service's deadline for ``generation`` still stands (not re-armed and
        not the sleeping owner's to fire). Read without the lock; :meth:`expire` re-checks."""
        return not self._owner_sleeping and self._timers[which].generation == generation

    def sleep(self) -> int | None:
        """The owner goes to sleep in ``wfi``: from now on it fires the deadlines itself.

        Returns the earliest armed deadline (counter value), ``None`` if nothing is armed.
        Call :meth:`wake` when the owner stops waiting, whatever woke it.
        """
        with self._lock:
            self._owner_sleeping = True
            armed = [t.cval for t in self._timers
                     if t.ctl & CTL_ENABLE and not t.ctl & CTL_IMASK and not t.level]
        self._service.owner_sleeps(self)
        return min(armed) if armed else None

    def wake(self, fire: bool = True) -> None:
        """The owner stops waiting: raise what is due, give the rest back to the service.

        ``fire=False`` (the machine is paused): raise nothing, give every armed
        deadline back to the service, which holds expiries until resume.
        """
        now = counter()
        with self._lock:
            self._owner_sleeping = False
            armed = [(which, t.generation, t.cval) for which, t in enumerate(self._timers)
                     if t.ctl & CTL_ENABLE and not t.ctl & CTL_IMASK and not t.level]
        if not fire:
            for which, generation, cval in armed:
                self._service.schedule(self, which, generation, cval)
            return
        for which in (VIRTUAL, PHYSICAL):
            self._update(which)
        for _which, _generation, cval in armed:
            if now >= cval:
                self._service.record((now - cval) * COUNTER_PERIOD_NS)

    def reset(self) -> None:
        """CPU reset (PSCI ``CPU_ON``, power off): both timers disabled, lines low."""
        lowered = []
        with self._lock:
            for which, timer in enumerate(self._timers):
                timer.ctl, timer.cval = 0, 0
                timer.generation += 1
                if timer.level:
                    timer.level = False
                    lowered.append(which)
        for which in lowered:
            self._set_line(TIMER_PPIS[which], False)

    def read_ctl(self, which: int) -> int:
        """``CNT*_CTL_EL0`` with ``ISTATUS`` as of now."""
        with self._lock:
            timer = self._timers[which]
            status = CTL_ISTATUS if timer.ctl & CTL_ENABLE and counter() >= timer.cval else 0
            return (timer.ctl & (CTL_ENABLE | CTL_IMASK)) | status

    def write(self, which: int, register: str, value: int) -> int:
        """A guest write of ``register`` ("ctl", "cval", "tval"); returns the new ``CVAL``."""
        with self._lock:
            timer = self._timers[which]
            if register == "ctl":
                timer.ctl = value & (CTL_ENABLE | CTL_IMASK)
            elif register == "cval":
                timer.cval = value & _MASK64
            else:
                timer.cval = (counter() + _signed32(value)) & _MASK64
            cval = timer.cval
        self._update(which)
        return cval

    def refresh(self) -> None:
        """Re-drive both lines (after the guest completed a timer interrupt)."""
        for which in (VIRTUAL, PHYSICAL):
            self._update(which, repeat=True)

    def expire(self, which: int, generation: int) -> bool:
        """The service's deadline for ``generation`` arrived; ``False`` if it was re-armed
        or the owner sleeps (and fires it itself)."""
        with self._lock:
            if self._timers[which].generation != generation or self._owner_sleeping:
                return False
        self._update(which)
        return True

    def _update(self, which: int, repeat: bool = False) -> None:
        with self._lock:
            timer = self._timers[which]
            timer.generation += 1
            armed = timer.ctl & CTL_ENABLE and not timer.ctl & CTL_IMASK
            high = bool(armed) and counter() >= timer.cval
            changed = high != timer.level or (high and repeat)
            timer.level = high
            generation, cval = timer.generation, timer.cval
            schedule = bool(armed) and not high and not self._owner_sleeping
        if changed:
            self._set_line(TIMER_PPIS[which], high)
        if schedule:
            self._service.schedule(self, which, generation, cval)


__all__ = [
    "COUNTER_FREQUENCY", "COUNTER_PERIOD_NS", "CTL_ENABLE", "CTL_IMASK", "CTL_ISTATUS",
    "PHYSICAL", "PPI_PHYSICAL_TIMER", "PPI_VIRTUAL_TIMER", "TIMER_PPIS", "TIMER_SYSREGS",
    "VIRTUAL", "GenericTimer", "TimerService", "counter",
]
