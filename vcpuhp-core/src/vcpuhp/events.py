"""Machine events and their delivery to subscribers.

Event names follow QEMU's where QEMU has one (``DEVICE_DELETED``,
``DEVICE_UNPLUG_GUEST_ERROR``, ``ACPI_DEVICE_OST``, ``SHUTDOWN``, ``RESET``,
``STOP``, ``RESUME``, ``GUEST_PANICKED``); the others are vcpuhp's own.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

_log = logging.getLogger(__name__)

CPU_PLUGGED: Final = "CPU_PLUGGED"
CPU_UNPLUG_REQUESTED: Final = "CPU_UNPLUG_REQUESTED"
DEVICE_DELETED: Final = "DEVICE_DELETED"
DEVICE_UNPLUG_GUEST_ERROR: Final = "DEVICE_UNPLUG_GUEST_ERROR"
CPU_POWERED_ON: Final = "CPU_POWERED_ON"
CPU_POWERED_OFF: Final = "CPU_POWERED_OFF"
ACPI_DEVICE_OST: Final = "ACPI_DEVICE_OST"
INTERRUPT: Final = "INTERRUPT"
GUEST_ERROR: Final = "GUEST_ERROR"
VCPU_FAULT: Final = "VCPU_FAULT"
GUEST_PANICKED: Final = "GUEST_PANICKED"
"""QEMU's event: ``{"action": "pause"|"poweroff"|"run", "info": {...}}``; vcpuhp's
``info`` is ``{"type": "vcpu-fault", "cpu-index": N, "message": ...}``."""
SHUTDOWN: Final = "SHUTDOWN"
RESET: Final = "RESET"
STOP: Final = "STOP"
RESUME: Final = "RESUME"
CONSOLE: Final = "CONSOLE"


@dataclass(frozen=True)
class MachineEvent:
    """One thing that happened to the machine."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)


Listener = Callable[[MachineEvent], None]


class EventBus:
    """Delivers each event to every subscriber, in order, on the emitting thread.

    A subscriber that raises is logged and kept; it never breaks the machine.
    """

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every later event; returns a function that unsubscribes."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def emit(self, name: str, **data: Any) -> MachineEvent:
        """Build an event and deliver it to every subscriber."""
        event = MachineEvent(name, data)
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                _log.exception("event listener %r failed on %s", listener, name)
        return event

    @contextmanager
    def recorder(self) -> Iterator[EventRecorder]:
        """Record events while the ``with`` block runs."""
        recorder = EventRecorder()
        unsubscribe = self.subscribe(recorder.put)
        try:
            yield recorder
        finally:
            unsubscribe()


class EventRecorder:
    """A queue of events with a blocking ``wait_for``; see :meth:`EventBus.recorder`."""

    def __init__(self) -> None:
        self._queue: queue.Queue[MachineEvent] = queue.Queue()
        self.seen: list[MachineEvent] = []

    def put(self, event: MachineEvent) -> None:
        """Record ``event`` (an :class:`EventBus` listener)."""
        self._queue.put(event)

    def wait_for(
        self,
        name: str,
        predicate: Callable[[MachineEvent], bool] | None = None,
        timeout: float = 10.0,
    ) -> MachineEvent:
        """Block until an event called ``name`` (matching ``predicate``) arrives.

        Raises :class:`TimeoutError` naming the events seen meanwhile once
        ``timeout`` seconds have passed, even while other events keep arriving.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise queue.Empty
                event = self._queue.get(timeout=remaining)
            except queue.Empty:
                seen = ", ".join(e.name for e in self.seen[-20:])
                raise TimeoutError(f"no {name} event within {timeout}s; saw: {seen}") from None
            self.seen.append(event)
            if event.name == name and (predicate is None or predicate(event)):
                return event

    def names(self) -> list[str]:
        """Names of the events recorded so far (drains the queue without blocking)."""
        while True:
            try:
                self.seen.append(self._queue.get_nowait())
            except queue.Empty:
                return [e.name for e in self.seen]
