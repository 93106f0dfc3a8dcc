"""A service thread that does what falls due and otherwise sleeps until the next deadline.

The machine's unplug watchdog and tcg-unicorn's timer service and stop
retrier are the same machine: one thread, a set of pending deadlines guarded
by a condition, a loop that sleeps until the earliest one (with no timeout
while nothing is pending, so an idle machine costs nothing), takes what is
due and does it *without* the condition held, so the work may take other
locks (the machine lock, a vCPU's condition) while new deadlines are added.
:class:`DeadlineThread` is that loop and its life cycle; a subclass keeps its
own pending set and says what is due (:meth:`DeadlineThread._next`).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable

Work = Callable[[], None]
"""What fell due, to be done on the thread without the condition held."""


class DeadlineThread(ABC):
    """One daemon thread serving deadlines; :meth:`start` it (idempotent), :meth:`close` it.

    Subclasses guard their pending deadlines with ``_cond`` (reentrant), and
    ``notify`` it whenever the earliest deadline may have changed.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition()
        self._closed = False
        """Guarded by ``_cond``: once set, nothing is added and the thread ends."""
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread unless it runs or the service was closed."""
        with self._cond:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Drop what is pending and stop the thread (joined unless called from it)."""
        with self._cond:
            self._closed = True
            self._forget()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    @abstractmethod
    def _next(self) -> tuple[Work | None, float | None]:
        """With ``_cond`` held: ``(work, None)`` for something due now (taken out of the
        pending set), else ``(None, seconds until the next deadline)``, ``(None, None)``
        while nothing is pending."""

    @abstractmethod
    def _forget(self) -> None:
        """With ``_cond`` held, at :meth:`close`: drop every pending deadline."""

    def _thread_started(self) -> None:
        """First thing on the thread (e.g. its timer slack)."""

    def _run(self) -> None:
        self._thread_started()
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    work, wait = self._next()
                    if work is not None:
                        break
                    self._cond.wait(wait)
            work()


__all__ = ["DeadlineThread", "Work"]
