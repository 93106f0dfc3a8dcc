"""Deadlines for ``device_del`` requests the guest may never answer.

QEMU waits forever for a guest to eject a CPU it was asked to release. A
VMM driven by an autoscaler needs a way out: a ``device_del`` may carry a
timeout (or the machine a default one, ``MachineConfig.unplug_timeout``),
after which the machine withdraws the request exactly as
:meth:`~vcpuhp.machine.VirtMachine.cancel_unplug` does.

One watchdog thread per machine ("vcpuhp-unplug-watchdog") keeps the
deadlines. It starts with the first deadline and stops at machine shutdown,
so a machine that never uses timeouts has no such thread, and one that does
has exactly one however many requests are pending.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from vcpuhp.deadline_thread import DeadlineThread, Work

_THREAD_NAME: Final = "vcpuhp-unplug-watchdog"

Expire = Callable[[int, int], None]
"""Called (without the watchdog's lock) as ``expire(cpu_index, request)`` when a deadline
passes; ``request`` identifies which ``device_del`` it was for."""


class UnplugWatchdog(DeadlineThread):
    """Deadlines keyed by CPU index; a later :meth:`arm` for a CPU replaces its deadline."""

    def __init__(self, expire: Expire) -> None:
        super().__init__(_THREAD_NAME)
        self._expire = expire
        self._deadlines: dict[int, tuple[float, int]] = {}

    def arm(self, index: int, request: int, timeout: float) -> None:
        """Call ``expire(index, request)`` once ``timeout`` seconds have passed."""
        with self._cond:
            if self._closed:
                return
            self._deadlines[index] = (time.monotonic() + timeout, request)
            self.start()  # the first deadline starts the thread
            self._cond.notify_all()

    def disarm(self, index: int) -> None:
        """Forget CPU ``index``'s deadline (the guest answered, or the request was withdrawn)."""
        with self._cond:
            self._deadlines.pop(index, None)

    def pending(self) -> dict[int, int]:
        """CPU index -> request of every armed deadline."""
        with self._cond:
            return {index: request for index, (_, request) in self._deadlines.items()}

    def _forget(self) -> None:
        self._deadlines.clear()

    def _next(self) -> tuple[Work | None, float | None]:
        now = time.monotonic()
        due = [(i, r) for i, (at, r) in self._deadlines.items() if at <= now]
        if not due:
            soonest = min((at for at, _ in self._deadlines.values()), default=None)
            return None, None if soonest is None else soonest - now
        for index, _ in due:
            del self._deadlines[index]
        return lambda: self._expire_all(due), None

    def _expire_all(self, due: list[tuple[int, int]]) -> None:
        for index, request in due:
            self._expire(index, request)


__all__ = ["UnplugWatchdog"]
