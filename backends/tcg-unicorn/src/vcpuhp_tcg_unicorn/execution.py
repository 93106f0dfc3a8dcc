"""With ``exec=serial``, one engine executes guest code at a time, in fair turns.

Unicorn 2.1.4 translates every block as for a machine with one CPU: its
``curr_cflags()`` is 0, never ``CF_PARALLEL``, so ``LDXR``/``STXR``, ``CAS``,
``SWP`` and the other LSE atomics are a plain load and a plain store. Two
engines running at once on two host threads then lose updates: two CPUs
adding 1 a million times each with ``LDADD`` (or an ``LDXR``/``STXR`` loop)
to one counter end about 40% short. QEMU runs code translated that way one
vCPU at a time (its round-robin TCG, ``-accel tcg,thread=single``); so does
the backend with ``exec=serial``, with an :class:`ExecutionToken` that a vCPU
holds for the length of one run (``emu_start``) and never while it sleeps in
``wfi``, waits to be powered on or handles what ended the run.

Turns: a vCPU that wants the token queues (first come, first served); if the
holder keeps it longer than :data:`TURN` the first waiter stops the holder's
run at its next block boundary (exact, as any stop) and gets the token when
that run ends. A vCPU kicked while it waited runs its turn all the same
(with its IRQ input driven afresh): giving the turn up starved a CPU that
other CPUs interrupt often.

Why it is not the default: Unicorn ends no run on ``YIELD`` or ``WFE``, so a
CPU spinning for another (Linux's ``cpu_relax()`` loops, spinlocks) burns its
whole turn while the CPU it waits for cannot run. Linux 6.12 on two CPUs,
which boots to its userland in about a minute with ``exec=parallel``, had not
reached it after 100 s. ``exec=parallel`` (the default) runs every engine at
once: right for guests whose CPUs share no atomics (the bundled guest,
benchmarks), and what Linux needs to be usable, at the price above.

A waiter gives up (``give_up``) when its vCPU is powered off, reset, paused or
told to exit: ejecting a vCPU, which holds the machine lock, must be able to
join its thread even while the holder waits for that lock in a hook.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Final

TURN: Final = 0.002
"""Seconds a holder keeps the token while another vCPU waits for it."""


class ExecutionToken:
    """The right to execute guest code; ``serial`` ``False`` grants it to every caller."""

    def __init__(self, *, serial: bool, turn: float = TURN) -> None:
        self.serial = serial
        self.turn = turn
        self._cond = threading.Condition()
        self._holder: object | None = None
        self._stop_holder: Callable[[], None] | None = None
        self._since = 0.0
        self._queue: collections.deque[object] = collections.deque()
        self.handoffs = 0
        """Times the token went to a vCPU that had to wait for it."""
        self.preemptions = 0
        """Times a waiter stopped the holder's run because its turn was over."""

    def acquire(self, owner: object, stop: Callable[[], None],
                give_up: Callable[[], bool]) -> bool:
        """Wait for the token; ``False`` (without it) once ``give_up()`` is true.

        ``stop`` ends ``owner``'s current run at a block boundary (any thread, never
        blocks); a waiter calls it when ``owner``'s turn is over.
        """
        if not self.serial:
            return True
        with self._cond:
            if self._holder is None and not self._queue:
                self._grant(owner, stop)
                return True
            self._queue.append(owner)
        try:
            while True:
                stop_holder = None
                with self._cond:
                    if give_up():
                        return False
                    if self._holder is None and self._queue[0] is owner:
                        self.handoffs += 1
                        self._grant(owner, stop)
                        return True
                    if self._holder is None or self._queue[0] is not owner:
                        self._cond.wait()
                        continue
                    remaining = self._since + self.turn - time.monotonic()
                    if remaining > 0:
                        self._cond.wait(remaining)
                        continue
                    # Repeated each turn: the holder may not have been inside a run yet.
                    stop_holder = self._stop_holder
                    self.preemptions += 1
                    self._since = time.monotonic()
                if stop_holder is not None:
                    stop_holder()  # not under _cond: it takes the holder's own lock
        finally:
            with self._cond:
                if owner in self._queue:
                    self._queue.remove(owner)
                    self._cond.notify_all()  # the next in line may be first now

    def _grant(self, owner: object, stop: Callable[[], None]) -> None:
        self._holder, self._stop_holder = owner, stop
        self._since = time.monotonic()

    def release(self, owner: object) -> None:
        """``owner``'s run ended: the first waiter (if any) takes the token."""
        if not self.serial:
            return
        with self._cond:
            if self._holder is owner:
                self._holder = self._stop_holder = None
                self._cond.notify_all()

    def wake(self) -> None:
        """Make every waiter look at its ``give_up`` again."""
        with self._cond:
            self._cond.notify_all()


__all__ = ["TURN", "ExecutionToken"]
