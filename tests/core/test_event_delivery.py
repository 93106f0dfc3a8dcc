"""Listeners never run with the machine lock held (issue 8, item 2).

The machine emits under its lock; the bus delivers on its own event thread.
A listener may call back into the machine, even shut it down, and a listener
that blocks holds up events, never the machine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from vcpuhp import VirtMachine
from vcpuhp import events as ev
from vcpuhp.events import EventBus, MachineEvent
from vcpuhp_null import GuestDriver

Booted = Callable[..., tuple[VirtMachine, GuestDriver]]


def _lock_is_free(machine: VirtMachine) -> bool:
    """Whether another thread could take the machine lock right now."""
    result: list[bool] = []

    def probe() -> None:
        got = machine.lock.acquire(timeout=5)
        if got:
            machine.lock.release()
        result.append(got)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return result[0]


def test_a_listener_runs_off_the_machine_lock_and_off_the_emitting_thread(
    booted: Booted,
) -> None:
    machine, _ = booted("cpus=1,maxcpus=3")
    seen: list[tuple[bool, str]] = []

    def listener(event: MachineEvent) -> None:
        if event.name == ev.CPU_PLUGGED:
            seen.append((_lock_is_free(machine), threading.current_thread().name))

    machine.events.subscribe(listener)
    machine.device_add("max-arm-cpu", "c1", **{"core-id": 1})
    assert machine.events.flush()
    assert seen == [(True, "vcpuhp-events")]


def test_a_listener_waiting_for_a_thread_that_calls_the_machine_does_not_deadlock(
    booted: Booted,
) -> None:
    """The deadlock reported: a listener that waits for another thread using the machine."""
    machine, _ = booted("cpus=1,maxcpus=3")
    answers: list[object] = []

    def listener(event: MachineEvent) -> None:
        if event.name == ev.CPU_PLUGGED:
            helper = threading.Thread(target=lambda: answers.append(machine.cpu_masks()))
            helper.start()
            helper.join(timeout=10)
            answers.append("joined" if not helper.is_alive() else "stuck")

    machine.events.subscribe(listener)
    machine.device_add("max-arm-cpu", "c1", **{"core-id": 1})
    assert machine.events.flush()
    assert answers[-1] == "joined"
    assert 1 in answers[0].enabled  # type: ignore[attr-defined]


def test_a_blocked_listener_does_not_block_the_machine(booted: Booted) -> None:
    """A listener stuck like a print to a pipe nobody reads: plug and unplug go on."""
    machine, driver = booted("cpus=1,maxcpus=3")
    release = threading.Event()
    machine.events.subscribe(lambda _event: release.wait(30))
    try:
        for n in range(20):
            machine.device_add("max-arm-cpu", f"c{n}", **{"core-id": 1})
            driver.handle_hotplug()  # scan, CPU_ON
            assert machine.vcpus[1].online
            machine.device_del(f"c{n}")
            driver.handle_hotplug()  # offline (CPU_OFF from CPU 1) and eject
            assert not machine.vcpus[1].enabled
        assert machine.events.stats()["backlog"] > 0, "the listener really is stuck"
    finally:
        release.set()
    assert machine.events.flush()


def test_shutdown_from_a_listener_completes(booted: Booted) -> None:
    """A listener that shuts the machine down (e.g. on SHUTDOWN) does not half-shut it."""
    machine, driver = booted("cpus=2,maxcpus=3")
    done = threading.Event()

    def on_shutdown(event: MachineEvent) -> None:
        if event.name == ev.SHUTDOWN:
            machine.shutdown()
            done.set()

    machine.events.subscribe(on_shutdown)
    assert driver.psci(0, 0x8400_0008) == 0  # SYSTEM_OFF from the guest
    assert done.wait(10)
    assert machine.memory is None
    assert machine.backend_stats()["parked"] == 0
    assert machine.cpu_masks().online == frozenset()


def test_a_full_backlog_drops_the_oldest_events_and_counts_them() -> None:
    bus = EventBus(max_backlog=5)
    release = threading.Event()
    got: list[int] = []

    def listener(event: MachineEvent) -> None:
        release.wait(10)
        got.append(event.data["n"])

    bus.subscribe(listener)
    for n in range(50):
        bus.emit("E", n=n)
    release.set()
    assert bus.flush()
    stats = bus.stats()
    assert stats["emitted"] == stats["delivered"] == 50
    assert stats["dropped"] == len(range(50)) - len(got)
    assert stats["dropped"] >= 44  # at most the one in hand plus five queued survive
    assert got == sorted(got) and got[-1] == 49, "order kept, newest kept"
    bus.close()


def test_an_event_reaches_only_listeners_subscribed_when_it_was_emitted() -> None:
    bus = EventBus()
    release = threading.Event()
    early: list[str] = []
    late: list[str] = []
    bus.subscribe(lambda e: (release.wait(10), early.append(e.name)))
    bus.emit("BEFORE")
    bus.subscribe(lambda e: late.append(e.name))
    bus.emit("AFTER")
    release.set()
    assert bus.flush()
    assert early == ["BEFORE", "AFTER"]
    assert late == ["AFTER"]
    bus.close()


def test_flush_from_a_listener_returns_at_once() -> None:
    bus = EventBus()
    results: list[bool] = []
    bus.subscribe(lambda _e: results.append(bus.flush(timeout=None)))
    bus.emit("E")
    assert bus.flush()
    assert results == [True]
    bus.close()
