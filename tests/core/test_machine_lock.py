"""The machine lock: reentrant, and its waits can be abandoned without polling."""

from __future__ import annotations

import threading

from vcpuhp.machine_lock import MachineLock

BOUND = 10.0
"""Seconds after which a thread that should have finished is a failure (never reached)."""


def _start(target: object) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_it_is_reentrant() -> None:
    lock = MachineLock()
    with lock, lock:
        assert lock.acquire_unless(lambda: True), "the owner gets it again at once"
        lock.release()
    assert lock.acquire(blocking=False)
    lock.release()


def test_a_waiter_gets_the_lock_when_the_holder_releases_it() -> None:
    lock = MachineLock()
    waiting, got = threading.Event(), []

    lock.acquire()

    def waiter() -> None:
        waiting.set()
        got.append(lock.acquire_unless(lambda: False))
        lock.release()

    thread = _start(waiter)
    assert waiting.wait(BOUND)
    lock.release()
    thread.join(BOUND)
    assert not thread.is_alive() and got == [True]
    assert lock._waiters == 0


def test_a_waiter_gives_up_while_the_holder_keeps_the_lock() -> None:
    lock = MachineLock()
    give_up = threading.Event()
    results: list[bool] = []
    with lock:
        thread = _start(lambda: results.append(lock.acquire_unless(give_up.is_set)))
        while not lock._waiters and thread.is_alive():
            threading.Event().wait(0.001)  # until it waits (it cannot take the lock)
        give_up.set()
        lock.wake_waiters()
        thread.join(BOUND)  # the holder never released: only wake_waiters ended the wait
        assert not thread.is_alive() and results == [False]
    assert lock._waiters == 0


def test_a_wait_that_is_already_abandoned_returns_at_once() -> None:
    lock = MachineLock()
    with lock:
        results: list[bool] = []
        thread = _start(lambda: results.append(lock.acquire_unless(lambda: True)))
        thread.join(BOUND)
        assert results == [False]
