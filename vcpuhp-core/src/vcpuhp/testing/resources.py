"""Resource counts the suite measures itself: threads, OS tasks, file descriptors, vCPU objects.

A backend's ``stats()`` says what the backend believes it holds; these say
what the process really holds. :meth:`Resources.measure` takes a
snapshot; :meth:`Resources.leaks_since` lists, in words, what is there now
that was not before (a thread by name and ident, a file descriptor with what
it points to, live vCPU objects), so a failing check says what leaked.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from vcpuhp.testing.probe import ContractProbe

_PROC_FD: Final = Path("/proc/self/fd")
_PROC_TASK: Final = Path("/proc/self/task")


def _fds() -> dict[int, str]:
    if not _PROC_FD.is_dir():
        return {}
    found: dict[int, str] = {}
    for entry in os.listdir(_PROC_FD):
        try:
            found[int(entry)] = os.readlink(_PROC_FD / entry)
        except OSError:
            continue  # the directory's own fd, closed by now
    return found


def _tasks() -> int:
    try:
        return len(os.listdir(_PROC_TASK))
    except OSError:
        return 0


@dataclass(frozen=True)
class Resources:
    """What the process holds at one moment."""

    threads: dict[int, str]
    """Live Python threads: ident -> name."""
    tasks: int
    """OS threads of the process (``/proc/self/task``; 0 where there is no /proc)."""
    fds: dict[int, str]
    """Open file descriptors: number -> what it points to (``/proc/self/fd``)."""
    vcpus: int
    """vCPU objects the backend created that still exist (-1 without a probe)."""

    @classmethod
    def measure(cls, probe: ContractProbe | None = None) -> Resources:
        """A snapshot (after a full garbage collection, so only real references count)."""
        gc.collect()
        vcpus = len(probe.live_vcpus()) if probe is not None else -1
        threads = {t.ident: t.name for t in threading.enumerate()
                   if t.ident is not None and t.is_alive()}
        return cls(threads, _tasks(), _fds(), vcpus)

    def leaks_since(self, before: Resources, *, vcpus: int | None = None) -> list[str]:
        """What this snapshot holds that ``before`` did not, in words (empty: nothing).

        ``vcpus``: the number of live vCPU objects expected now (default: as before).
        """
        problems = []
        new_threads = {i: n for i, n in self.threads.items() if i not in before.threads}
        if new_threads:
            names = ", ".join(f"{n!r} (ident {i})" for i, n in sorted(new_threads.items()))
            problems.append(f"{len(new_threads)} more thread(s) alive: {names}")
        if self.tasks and before.tasks and self.tasks > before.tasks:
            problems.append(f"{self.tasks - before.tasks} more OS thread(s) in /proc/self/task "
                            f"({before.tasks} -> {self.tasks})")
        new_fds = {fd: t for fd, t in self.fds.items() if fd not in before.fds}
        if new_fds:
            shown = ", ".join(f"{fd} -> {t}" for fd, t in sorted(new_fds.items()))
            problems.append(f"{len(new_fds)} more file descriptor(s) open: {shown}")
        expected = before.vcpus if vcpus is None else vcpus
        if self.vcpus >= 0 and expected >= 0 and self.vcpus != expected:
            problems.append(f"{self.vcpus} backend vCPU object(s) alive, expected {expected}")
        return problems


def settle_leaks(before: Resources, probe: ContractProbe | None, *, vcpus: int | None = None,
                 timeout: float = 2.0) -> list[str]:
    """:meth:`Resources.leaks_since` once it is empty, or after ``timeout`` seconds.

    A joined thread is gone from Python's view at once, but the OS may need a
    moment to reap it; everything else is exact at the first measurement.
    """
    deadline = time.monotonic() + timeout
    while True:
        problems = Resources.measure(probe).leaks_since(before, vcpus=vcpus)
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.02)


__all__ = ["Resources", "settle_leaks"]
