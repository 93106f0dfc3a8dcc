"""Making ``uc_emu_stop`` from another thread reliable.

``uc_emu_stop`` is a no-op when the engine is not running, and
``uc_emu_start`` clears any stop request on entry. A stop issued between a
vCPU thread's last check and the moment Unicorn starts running is therefore
lost, and a guest in a pure compute loop would then never come back. The
:class:`StopRetrier` re-issues a stop every few milliseconds until the vCPU
thread acknowledges it (returns from ``emu_start`` and cancels). It also
serves timed stops: a vCPU with an interrupt pending but masked by
``PSTATE.I`` asks to be stopped periodically so it can see the guest unmask
(``msr daifclr`` and ``eret`` do not trap under Unicorn).

It owns one host thread per backend, which sleeps when nothing is scheduled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_log = logging.getLogger(__name__)

Poke = Callable[[], bool]
"""Does its work; returns whether it should be called again after another period."""


@dataclass(eq=False)
class _Entry:
    deadline: float
    period: float
    poke: Poke


class StopRetrier:
    """Calls each scheduled poke every ``period`` seconds until it is cancelled or declines."""

    def __init__(self, name: str = "vcpuhp-unicorn-stopper") -> None:
        self._cond = threading.Condition()
        self._due: dict[int, _Entry] = {}
        self._closing = False
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the service thread runs."""
        return self._thread.is_alive()

    def schedule(self, key: int, poke: Poke, period: float) -> None:
        """Call ``poke`` after ``period`` seconds and again every ``period`` until cancelled
        or until it returns ``False``.

        Scheduling a key that is already scheduled keeps the earlier deadline.
        """
        with self._cond:
            if self._closing:
                return
            if key not in self._due:
                self._due[key] = _Entry(time.monotonic() + period, period, poke)
                self._cond.notify()

    def cancel(self, key: int) -> None:
        """Stop calling ``key``'s poke (no-op if it is not scheduled)."""
        with self._cond:
            self._due.pop(key, None)

    def pending(self) -> int:
        """How many pokes are scheduled."""
        with self._cond:
            return len(self._due)

    def close(self) -> None:
        """Stop the service thread and wait for it."""
        with self._cond:
            self._closing = True
            self._due.clear()
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _main(self) -> None:
        while True:
            with self._cond:
                while not self._closing:
                    if not self._due:
                        self._cond.wait()
                        continue
                    now = time.monotonic()
                    wake = min(entry.deadline for entry in self._due.values())
                    if wake > now:
                        self._cond.wait(wake - now)
                        continue
                    break
                if self._closing:
                    return
                due = []
                for key, entry in self._due.items():
                    if entry.deadline <= now:
                        entry.deadline = now + entry.period
                        due.append((key, entry))
            for key, entry in due:  # outside the lock: a poke takes the vCPU's own lock
                try:
                    again = entry.poke()
                except Exception:
                    _log.exception("stop retry %r failed", entry.poke)
                    again = False
                if not again:
                    with self._cond:
                        if self._due.get(key) is entry:
                            del self._due[key]
