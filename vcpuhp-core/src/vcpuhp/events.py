"""Machine events and their delivery to subscribers.

Event names follow QEMU's where QEMU has one (``DEVICE_DELETED``,
``DEVICE_UNPLUG_GUEST_ERROR``, ``ACPI_DEVICE_OST``, ``SHUTDOWN``, ``RESET``,
``STOP``, ``RESUME``, ``GUEST_PANICKED``); the others are vcpuhp's own.

Delivery rule: listeners never run with the machine lock held. The machine
emits events while it holds its lock (so their order is the order of the
changes); :class:`EventBus` queues them and one event thread per bus calls
the listeners, in order, one event at a time. A listener may therefore call
any machine method, including :meth:`~vcpuhp.machine.VirtMachine.shutdown`.
A listener that blocks delays later events (for every listener) but never
the machine; the backlog is bounded (:attr:`EventBus.max_backlog`), past
which the oldest undelivered events are dropped and counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
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

DEFAULT_MAX_BACKLOG: Final = 65536
"""Undelivered events an :class:`EventBus` keeps before it drops the oldest."""
_THREAD_NAME: Final = "vcpuhp-events"


@dataclass(frozen=True)
class MachineEvent:
    """One thing that happened to the machine."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)


Listener = Callable[[MachineEvent], None]


class EventBus:
    """Delivers each event to the listeners subscribed when it was emitted, in order,
    on the bus's own event thread.

    :meth:`emit` never blocks and never calls a listener. A listener that
    raises is logged and kept. A listener is called for an event only if it
    was subscribed when the event was emitted and still is when the event is
    delivered.
    """

    def __init__(self, max_backlog: int = DEFAULT_MAX_BACKLOG) -> None:
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be at least 1, not {max_backlog}")
        self.max_backlog = max_backlog
        self._listeners: list[Listener] = []
        self._cond = threading.Condition()
        # Guarded by _cond:
        self._queue: deque[tuple[int, MachineEvent, tuple[Listener, ...]]] = deque()
        self._emitted = 0
        self._delivered = 0
        self._dropped = 0
        self._closing = False
        self._thread: threading.Thread | None = None

    # -- subscribing ------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every later event; returns a function that unsubscribes.

        After the returned function returns, ``listener`` is not called for
        any further event (one that is being delivered at that moment on the
        event thread may still finish).
        """
        with self._cond:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._cond:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    # -- emitting ---------------------------------------------------------------------

    def emit(self, name: str, **data: Any) -> MachineEvent:
        """Queue an event for every current subscriber; never blocks."""
        event = MachineEvent(name, data)
        with self._cond:
            self._emitted += 1
            if not self._listeners:
                self._delivered += 1
                return event
            if len(self._queue) >= self.max_backlog:
                self._queue.popleft()
                self._delivered += 1
                self._dropped += 1
                if self._dropped in (1, 10, 100) or self._dropped % 1000 == 0:
                    _log.warning("event listeners are %d events behind: %d events dropped "
                                 "so far (a listener blocks)", self.max_backlog, self._dropped)
            self._queue.append((self._emitted, event, tuple(self._listeners)))
            self._start_thread()
            self._cond.notify_all()
        return event

    def start(self) -> None:
        """Start the event thread now (it also starts on the first event with listeners).

        The machine starts it at realize, so a running machine always has
        exactly one event thread and thread counts do not depend on timing.
        """
        with self._cond:
            self._start_thread()

    def _start_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._closing = False
            self._thread = threading.Thread(target=self._run, name=_THREAD_NAME, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:  # closing and drained
                    self._thread = None
                    self._cond.notify_all()
                    return
                _seq, event, listeners = self._queue.popleft()
            for listener in listeners:
                with self._cond:
                    if listener not in self._listeners:
                        continue
                try:
                    listener(event)
                except Exception:
                    _log.exception("event listener %r failed on %s", listener, event.name)
            with self._cond:
                self._delivered += 1
                self._cond.notify_all()

    # -- waiting ----------------------------------------------------------------------

    @property
    def on_event_thread(self) -> bool:
        """Whether the caller is this bus's event thread (a listener)."""
        return threading.current_thread() is self._thread

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every event emitted before the call was delivered (or dropped).

        Returns ``False`` if ``timeout`` passed first. From a listener (the
        event thread) it returns ``True`` at once: that thread cannot wait
        for itself. Never call it holding the machine lock: a listener that
        needs the lock would wait for you while you wait for it.
        """
        if self.on_event_thread:
            return True
        with self._cond:
            target = self._emitted
            return self._cond.wait_for(lambda: self._delivered >= target, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued, then stop the event thread (a later emit restarts it).

        From a listener it only asks the thread to stop once the queue is empty.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout)
        if thread.is_alive():
            _log.warning("event thread still delivering after %ss (a listener blocks)", timeout)

    def stats(self) -> dict[str, int]:
        """``emitted``, ``delivered`` (including dropped), ``dropped`` and ``backlog``."""
        with self._cond:
            return {"emitted": self._emitted, "delivered": self._delivered,
                    "dropped": self._dropped, "backlog": len(self._queue)}

    @contextmanager
    def recorder(self) -> Iterator[EventRecorder]:
        """Record events while the ``with`` block runs."""
        recorder = EventRecorder(self)
        unsubscribe = self.subscribe(recorder.put)
        try:
            yield recorder
        finally:
            unsubscribe()


class EventRecorder:
    """A queue of events with a blocking ``wait_for``; see :meth:`EventBus.recorder`."""

    def __init__(self, bus: EventBus | None = None) -> None:
        self._bus = bus
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
        """Names of the events recorded so far.

        First waits until the bus delivered every event emitted before the
        call, so a change made just before is reflected.
        """
        if self._bus is not None:
            self._bus.flush()
        while True:
            try:
                self.seen.append(self._queue.get_nowait())
            except queue.Empty:
                return [e.name for e in self.seen]
