"""DeadlineThread, the loop behind the unplug watchdog and tcg-unicorn's timer and stop services.

A list of ``(seconds from now, work)`` stands in for a service's deadlines.
Waits are on events and conditions, bounded by :data:`BOUND` so that a broken
loop fails instead of hanging; nothing depends on how long anything takes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from vcpuhp.deadline_thread import DeadlineThread, Work

BOUND = 30.0
"""Seconds a wait may take before the test fails (a hang guard, not a timing check)."""
LATER = 3600.0
"""A deadline that never falls due during a test."""


class ListService(DeadlineThread):
    def __init__(self) -> None:
        super().__init__("test-deadlines")
        self.pending: list[tuple[float, Work]] = []
        self.started_on: list[str] = []

    def add(self, seconds: float, work: Work) -> None:
        with self._cond:
            self.pending.append((time.monotonic() + seconds, work))
            self._cond.notify_all()

    def _thread_started(self) -> None:
        self.started_on.append(threading.current_thread().name)

    def _forget(self) -> None:
        self.pending.clear()

    def _next(self) -> tuple[Work | None, float | None]:
        if not self.pending:
            return None, None
        self.pending.sort(key=lambda entry: entry[0])
        at, work = self.pending[0]
        wait = at - time.monotonic()
        if wait > 0:
            return None, wait
        self.pending.pop(0)
        return work, None


@pytest.fixture
def service() -> Iterator[ListService]:
    svc = ListService()
    yield svc
    svc.close()


def _threads_named(name: str) -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == name)


def test_the_thread_starts_once_and_runs_the_start_hook_on_itself(service: ListService) -> None:
    assert _threads_named("test-deadlines") == 0, "no thread before start"
    service.start()
    service.start()
    assert _threads_named("test-deadlines") == 1
    done = threading.Event()
    service.add(0, done.set)
    assert done.wait(BOUND)
    assert service.started_on == ["test-deadlines"]


def test_due_work_runs_on_the_thread_without_the_condition_held(service: ListService) -> None:
    running, release = threading.Event(), threading.Event()
    ran_on: list[str] = []

    def work() -> None:
        ran_on.append(threading.current_thread().name)
        running.set()
        release.wait(2 * BOUND)  # longer than the acquire below may wait

    service.start()
    service.add(0, work)
    assert running.wait(BOUND)
    assert service._cond.acquire(timeout=BOUND), "the condition is free while work runs"
    try:
        service.pending.append((time.monotonic() + LATER, lambda: None))
    finally:
        service._cond.release()
    release.set()
    assert ran_on == ["test-deadlines"]


def test_work_is_done_in_deadline_order(service: ListService) -> None:
    order: list[str] = []
    both = threading.Event()
    with service._cond:  # added together: the thread sees both at once
        service.pending.append((time.monotonic() - 1, lambda: order.append("first")))
        service.pending.append((time.monotonic(), lambda: (order.append("second"), both.set())))
    service.start()
    assert both.wait(BOUND)
    assert order == ["first", "second"]


def test_close_drops_what_is_pending_and_ends_a_sleeping_thread(service: ListService) -> None:
    ran: list[str] = []
    service.start()
    service.add(LATER, lambda: ran.append("late"))
    thread = service._thread
    assert thread is not None
    service.close()
    assert not thread.is_alive() and service.pending == [] and ran == []
    service.start()
    assert _threads_named("test-deadlines") == 0, "a closed service does not start again"


def test_work_may_close_its_own_service(service: ListService) -> None:
    closed = threading.Event()

    def close_from_the_thread() -> None:
        service.close()  # must not join itself
        closed.set()

    service.start()
    service.add(0, close_from_the_thread)
    assert closed.wait(BOUND)
    thread = service._thread
    assert thread is not None
    thread.join(BOUND)
    assert not thread.is_alive()


def test_a_new_earlier_deadline_wakes_the_sleeping_thread(service: ListService) -> None:
    done = threading.Event()
    service.start()
    service.add(LATER, lambda: None)
    service.add(0, done.set)  # notifies: the thread re-reads its next deadline
    assert done.wait(BOUND)

