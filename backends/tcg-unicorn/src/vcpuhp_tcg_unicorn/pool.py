"""Accounting of translation contexts: one per live vCPU thread, bounded by maxcpus.

QEMU's RFC v1 for arm64 vCPU hotplug had a TCG context counter that plug
incremented and unplug never decremented, so after ``maxcpus`` plug cycles
the next plug failed. Here every vCPU thread *registers* its context (its
engine and the size of that engine's translation buffer) when it starts and
*unregisters* it when it exits; registering beyond the bound is an error,
never a silent growth.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any

from vcpuhp.errors import BackendError


class TranslationContextError(BackendError):
    """A context could not be registered or unregistered (pool full, unknown context)."""


@dataclass(frozen=True)
class TranslationContext:
    """The translation context of one vCPU thread."""

    cpu_index: int
    engine_id: int
    """Identifies the Unicorn engine whose translation buffer this is."""
    tb_size: int
    """Bytes of translated-code buffer the engine was created with."""
    serial: int
    """Registration number (1, 2, ...), unique over the pool's lifetime."""


class TranslationContextPool:
    """At most ``capacity`` registered contexts, at most one per CPU index. Thread-safe."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"translation context pool capacity {capacity} must be positive")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._contexts: dict[int, TranslationContext] = {}
        self._serials = itertools.count(1)
        self.peak = 0
        self.total_registrations = 0
        self.total_unregistrations = 0

    @property
    def registered(self) -> int:
        """Contexts in use now."""
        with self._lock:
            return len(self._contexts)

    @property
    def free(self) -> int:
        """Contexts that can still be registered."""
        with self._lock:
            return self.capacity - len(self._contexts)

    def register(self, cpu_index: int, engine_id: int, tb_size: int) -> TranslationContext:
        """Take a context for CPU ``cpu_index``'s thread; raises when none is free."""
        with self._lock:
            if cpu_index in self._contexts:
                raise TranslationContextError(
                    f"CPU {cpu_index} already holds translation context "
                    f"#{self._contexts[cpu_index].serial}"
                )
            if len(self._contexts) >= self.capacity:
                owners = ", ".join(str(i) for i in sorted(self._contexts))
                raise TranslationContextError(
                    f"no free translation context for CPU {cpu_index}: all {self.capacity} "
                    f"(maxcpus) are registered, by CPUs {owners}"
                )
            context = TranslationContext(cpu_index, engine_id, tb_size, next(self._serials))
            self._contexts[cpu_index] = context
            self.total_registrations += 1
            self.peak = max(self.peak, len(self._contexts))
            return context

    def unregister(self, context: TranslationContext) -> None:
        """Give ``context`` back; raises if it is not the one registered for its CPU."""
        with self._lock:
            if self._contexts.get(context.cpu_index) is not context:
                raise TranslationContextError(
                    f"translation context #{context.serial} of CPU {context.cpu_index} "
                    "is not registered"
                )
            del self._contexts[context.cpu_index]
            self.total_unregistrations += 1

    def contexts(self) -> list[TranslationContext]:
        """The registered contexts, by CPU index."""
        with self._lock:
            return [self._contexts[i] for i in sorted(self._contexts)]

    def stats(self) -> dict[str, Any]:
        """The counters, under the names :meth:`UnicornBackend.stats` reports."""
        with self._lock:
            registered = len(self._contexts)
            return {
                "contexts_capacity": self.capacity,
                "contexts_registered": registered,
                "contexts_free": self.capacity - registered,
                "peak": self.peak,
                "total_registrations": self.total_registrations,
                "total_unregistrations": self.total_unregistrations,
            }
