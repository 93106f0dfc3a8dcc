"""EventRecorder.wait_for keeps to its timeout while other events keep arriving."""

from __future__ import annotations

import threading
import time

import pytest

from vcpuhp.events import EventBus, MachineEvent


def test_wait_for_times_out_while_non_matching_events_keep_arriving() -> None:
    bus = EventBus()
    with bus.recorder() as recorder:
        for n in range(300):  # 3 s of work for the predicate below
            bus.emit("WANTED", n=n)

        def slow_mismatch(_event: MachineEvent) -> bool:
            time.sleep(0.01)
            return False

        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"no WANTED event within 0\.2s; saw: WANTED"):
            recorder.wait_for("WANTED", slow_mismatch, timeout=0.2)
        assert time.monotonic() - started < 1.0, "wait_for overran its timeout"


def test_wait_for_times_out_under_a_flood_of_other_events() -> None:
    bus = EventBus()
    stop = threading.Event()

    def flood() -> None:
        deadline = time.monotonic() + 5
        while not stop.is_set() and time.monotonic() < deadline:
            bus.emit("NOISE")

    with bus.recorder() as recorder:
        thread = threading.Thread(target=flood, daemon=True)
        thread.start()
        try:
            started = time.monotonic()
            with pytest.raises(TimeoutError, match=r"no WANTED event within 0\.2s"):
                recorder.wait_for("WANTED", timeout=0.2)
            assert time.monotonic() - started < 1.5, "wait_for overran its timeout"
        finally:
            stop.set()
            thread.join()


def test_wait_for_still_returns_a_matching_event() -> None:
    bus = EventBus()
    with bus.recorder() as recorder:
        bus.emit("NOISE")
        bus.emit("WANTED", n=1)
        assert recorder.wait_for("WANTED", timeout=1).data == {"n": 1}
