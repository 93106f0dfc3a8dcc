"""The generic timer wakes a guest in ``wfi``; asynchronous stops are exact under a storm."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from unicorn_testlib import read_u64, require_unicorn, wait_until

require_unicorn()

import a64asm as a  # noqa: E402
from test_unicorn_engine import RAM, UART, Ram, make_engine, ram  # noqa: E402,F401
from unicorn_guests import (  # noqa: E402
    DONE,
    DONE_MAGIC,
    RESULTS,
    TIMER_CTL,
    TIMER_FREQUENCY,
    TIMER_LATE,
    timer_guest,
    write_image,
)

from vcpuhp.machine import VirtMachine  # noqa: E402
from vcpuhp_tcg_unicorn.timer import COUNTER_FREQUENCY  # noqa: E402

MakeMachine = Callable[..., VirtMachine]
WAKES = 5


def test_a_guest_in_wfi_wakes_when_its_virtual_timer_expires(
    unicorn_machine: MakeMachine, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    image = write_image(tmp_path, timer_guest(WAKES))
    machine = unicorn_machine("cpus=1,maxcpus=1", kernel=image)
    wait_until(lambda: read_u64(machine, RESULTS + DONE) == DONE_MAGIC, what="five timer wakes")
    assert read_u64(machine, RESULTS + TIMER_FREQUENCY) == COUNTER_FREQUENCY
    assert read_u64(machine, RESULTS + TIMER_CTL) == 0b101  # ENABLE | ISTATUS, IMASK clear
    late_ticks = [read_u64(machine, RESULTS + TIMER_LATE + 8 * n) for n in range(WAKES)]
    assert all(0 <= t < 1 << 62 for t in late_ticks), late_ticks  # woke at or after CVAL
    late_us = [round(t * 1e6 / COUNTER_FREQUENCY, 1) for t in late_ticks]
    record_property("timer_wakeup_error_us", late_us)
    print(f"timer wake-up error (us after CVAL): {late_us}")
    assert machine.backend_stats()["total_timer_expiries"] >= WAKES


@pytest.mark.parametrize("storm_seconds", [1.0])
def test_stops_from_another_thread_never_replay_an_access(
    ram: Ram, make_engine, storm_seconds: float  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    # The reproducer of the stop hazard: each MMIO write must happen exactly once and
    # `ldr x0, [x0]` must never run again with its own result as the base, however
    # many stops land -- here from another thread, as the backend issues them. ICC_*
    # accesses, which the engine retires from its hook by writing PC, must not leave PC
    # stale for the stops that follow them either (each one exactly once too).
    pointer, target = RAM + 0x8000, RAM + 0x9000
    ram.buffer[pointer - RAM:pointer - RAM + 8] = target.to_bytes(8, "little")
    ram.buffer[target - RAM:target - RAM + 8] = (0xBAD).to_bytes(8, "little")
    writes = 3000
    program = a.Program(RAM)(a.mov64(1, UART), a.movz(5, 0), a.mov64(7, writes))
    program.label("loop")(a.add_imm(5, 5, 1), a.ldr32(6, 1, 0x18), a.str32(5, 1, 0x40),
                          a.mrs(8, *a.ICC_IAR1_EL1), a.msr(*a.ICC_EOIR1_EL1, 5),
                          a.mov64(0, pointer), a.ldr(0, 0), a.cmp_reg(5, 7))
    program.b_cond(a.COND_LO, "loop")(a.WFI)
    ram.load(RAM, program)
    engine, exits = make_engine()
    assert engine.exact_async_stops
    engine.reset(RAM, ())
    running = threading.Event()
    running.set()
    stops = 0

    def storm() -> None:
        nonlocal stops
        while running.is_set():
            engine.request_stop()
            stops += 1
            running.wait(0.00002)

    stormer = threading.Thread(target=storm)
    stormer.start()
    runs = 0
    try:
        while True:
            engine.run()
            runs += 1
            assert engine.x(0) != 0xBAD, "ldr x0, [x0] was replayed with the loaded base"
            if engine.pc == RAM + 4 * len(program.words):
                break
    finally:
        running.clear()
        stormer.join()
    assert [e[3] for e in exits.events if e[0] == "write"] == list(range(1, writes + 1))
    assert [e[2] for e in exits.events if e[0] == "gic_write"] == list(range(1, writes + 1))
    assert len([e for e in exits.events if e[0] == "gic_read"]) == writes
    assert stops > 0 and runs >= 1  # how often the storm interrupted depends on the host
