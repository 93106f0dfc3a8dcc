"""The machine lock: a reentrant lock whose waiters can be told to give up.

Every public machine method holds it, and so does every call a backend's vCPU
thread makes into the machine (MMIO, PSCI, system registers). That creates one
hazard: a thread that holds the lock may need a vCPU thread to *exit* -- eject
joins the ejected CPU's thread -- while that thread is blocked waiting for the
same lock. A plain ``RLock`` wait cannot be interrupted, so backends had to wait
with a timeout and re-check in a loop.

:meth:`MachineLock.acquire_unless` waits without a timeout and returns ``False``
as soon as its *give-up* condition holds; whoever makes the condition true
(power off, unrealize) calls :meth:`MachineLock.wake_waiters`. A release of the
lock wakes the waiters too, so none of them polls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType


class MachineLock:
    """A reentrant lock (``with lock:``, ``acquire``, ``release``) plus abandonable waits."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._waiting = threading.Condition(threading.Lock())
        self._waiters = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """As :meth:`threading.RLock.acquire`."""
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        """As :meth:`threading.RLock.release`; wakes :meth:`acquire_unless` waiters."""
        self._lock.release()
        if self._waiters:
            with self._waiting:
                self._waiting.notify_all()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()

    def acquire_unless(self, give_up: Callable[[], bool]) -> bool:
        """Take the lock, waiting as long as needed, unless ``give_up()`` becomes true first.

        Returns ``True`` holding the lock, ``False`` without it. ``give_up`` is
        called with an internal lock held: it must not block or take other locks
        (read a flag). Whoever makes it true must call :meth:`wake_waiters`.
        """
        if self._lock.acquire(blocking=False):
            return True
        with self._waiting:
            self._waiters += 1
            try:
                while True:
                    # Retried after every release and every wake_waiters: a release
                    # that happened before the count went up is caught by this try.
                    if self._lock.acquire(blocking=False):
                        return True
                    if give_up():
                        return False
                    self._waiting.wait()
            finally:
                self._waiters -= 1

    def wake_waiters(self) -> None:
        """Make every :meth:`acquire_unless` waiter re-check its give-up condition."""
        with self._waiting:
            self._waiting.notify_all()


__all__ = ["MachineLock"]
