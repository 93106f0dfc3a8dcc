"""The execution token on its own: one holder, turns in arrival order, preemption, giving up."""

from __future__ import annotations

import threading

from unicorn_testlib import require_unicorn, wait_until

require_unicorn()

from vcpuhp_tcg_unicorn.execution import ExecutionToken  # noqa: E402

WAIT = 10.0
"""Seconds a test waits for a thread before it fails (never reached when all is well)."""


def never() -> bool:
    return False


def waiter(token: ExecutionToken, name: str, order: list[str],
           give_up: threading.Event | None = None) -> threading.Thread:
    def run() -> None:
        got = token.acquire(name, lambda: None, give_up.is_set if give_up else never)
        order.append(name if got else f"{name} gave up")
        if got:
            token.release(name)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def queued(token: ExecutionToken, count: int) -> bool:
    with token._cond:
        return len(token._queue) == count


def test_one_holder_and_the_waiters_take_turns_in_arrival_order() -> None:
    token = ExecutionToken(serial=True, turn=WAIT)
    assert token.acquire("A", lambda: None, never)
    order: list[str] = []
    b = waiter(token, "B", order)
    wait_until(lambda: queued(token, 1), what="a waiter")
    c = waiter(token, "C", order)
    wait_until(lambda: queued(token, 2), what="two waiters")
    assert order == [], "nobody runs while A holds the token"
    token.release("A")
    for thread in (b, c):
        thread.join(WAIT)
    assert order == ["B", "C"]
    assert token.handoffs == 2


def test_a_waiter_stops_the_holder_whose_turn_is_over() -> None:
    token = ExecutionToken(serial=True, turn=0.0)
    stopped = threading.Event()

    def stop_a() -> None:  # the holder's run ends: it gives the token back
        stopped.set()
        token.release("A")

    assert token.acquire("A", stop_a, never)
    order: list[str] = []
    waiter(token, "B", order).join(WAIT)
    assert stopped.is_set() and order == ["B"]
    assert token.preemptions >= 1


def test_a_waiter_gives_up_when_told_and_leaves_the_queue() -> None:
    token = ExecutionToken(serial=True, turn=WAIT)
    assert token.acquire("A", lambda: None, never)
    order: list[str] = []
    give_up = threading.Event()
    b = waiter(token, "B", order, give_up)
    wait_until(lambda: queued(token, 1), what="a waiter")
    give_up.set()
    token.wake()
    b.join(WAIT)
    assert order == ["B gave up"] and queued(token, 0)
    token.release("A")
    assert token.acquire("C", lambda: None, never), "free again"


def test_parallel_grants_every_caller_at_once() -> None:
    token = ExecutionToken(serial=False)
    assert token.acquire("A", lambda: None, never)
    assert token.acquire("B", lambda: None, never)
    token.release("A")
    token.release("B")
    assert token.handoffs == 0
