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
from unicorn_guests import BASE, DONE, DONE_MAGIC, RESULTS, write_image  # noqa: E402

from vcpuhp import memmap  # noqa: E402
from vcpuhp.machine import VirtMachine  # noqa: E402
from vcpuhp_tcg_unicorn.timer import COUNTER_FREQUENCY  # noqa: E402

MakeMachine = Callable[..., VirtMachine]
CNTVCT_EL0 = (3, 3, 14, 0, 2)
CNTV_CVAL_EL0 = (3, 3, 14, 3, 2)
CNTV_CTL_EL0 = (3, 3, 14, 3, 1)
CNTFRQ_EL0 = (3, 3, 14, 0, 0)
DELAY_TICKS = COUNTER_FREQUENCY // 500  # 2 ms
WAKES = 5


def timer_guest() -> a.Program:
    """Arm the virtual timer 2 ms ahead, sleep in wfi (IRQs masked), record how late it woke.

    Five times; record n at RESULTS + 0x100 + 8 n is (CNTVCT at wake - CVAL);
    RESULTS + 0x180 holds CNTFRQ_EL0 and RESULTS + 0x188 CNT_CTL after the wake.
    """
    rd = memmap.GICR_REGION0.base  # CPU 0's redistributor; SGI_base is the second frame
    p = a.Program(BASE)
    p(a.mov64(9, RESULTS), a.mov64(1, rd + 0x10000))
    p(a.mov64(3, 1 << 27), a.str32(3, 1, 0x080), a.str32(3, 1, 0x100))  # group 1, enable
    p(a.movz(3, 0xF0), a.msr(*a.ICC_PMR_EL1, 3), a.movz(3, 1), a.msr(*a.ICC_IGRPEN1_EL1, 3))
    p(a.mov64(2, memmap.GICD.base), a.movz(3, 0x12), a.str32(3, 2, 0))
    p(a.mrs(4, *CNTFRQ_EL0), a.str64(4, 9, 0x180), a.mov64(8, RESULTS + 0x100), a.movz(7, WAKES))
    p.label("again")(a.mrs(4, *CNTVCT_EL0), a.mov64(5, DELAY_TICKS), a.add_reg(5, 4, 5))
    p(a.msr(*CNTV_CVAL_EL0, 5), a.movz(6, 1), a.msr(*CNTV_CTL_EL0, 6), a.ISB)
    p.label("sleep")(a.WFI, a.mrs(10, *CNTV_CTL_EL0), a.str64(10, 9, 0x188))
    p(a.mrs(4, *CNTVCT_EL0), a.cmp_reg(4, 5)).b_cond(a.COND_LO, "sleep")
    p(a.sub_reg(4, 4, 5), a.str64(4, 8), a.add_imm(8, 8, 8))
    p(a.mrs(10, *a.ICC_IAR1_EL1), a.msr(*a.ICC_EOIR1_EL1, 10))
    p(a.movz(6, 0), a.msr(*CNTV_CTL_EL0, 6), a.sub_imm(7, 7, 1)).cbnz(7, "again")
    p(a.movz(5, DONE_MAGIC), a.str64(5, 9, DONE)).label("idle")(a.WFI).b("idle")
    return p


def test_a_guest_in_wfi_wakes_when_its_virtual_timer_expires(
    unicorn_machine: MakeMachine, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    machine = unicorn_machine("cpus=1,maxcpus=1", kernel=write_image(tmp_path, timer_guest()))
    wait_until(lambda: read_u64(machine, RESULTS + DONE) == DONE_MAGIC, what="five timer wakes")
    assert read_u64(machine, RESULTS + 0x180) == COUNTER_FREQUENCY
    assert read_u64(machine, RESULTS + 0x188) == 0b101  # ENABLE | ISTATUS, IMASK clear
    late_ticks = [read_u64(machine, RESULTS + 0x100 + 8 * n) for n in range(WAKES)]
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
    # many stops land -- here from another thread, as the backend issues them.
    pointer, target = RAM + 0x8000, RAM + 0x9000
    ram.buffer[pointer - RAM:pointer - RAM + 8] = target.to_bytes(8, "little")
    ram.buffer[target - RAM:target - RAM + 8] = (0xBAD).to_bytes(8, "little")
    writes = 3000
    program = a.Program(RAM)(a.mov64(1, UART), a.movz(5, 0), a.mov64(7, writes))
    program.label("loop")(a.add_imm(5, 5, 1), a.ldr32(6, 1, 0x18), a.str32(5, 1, 0x40),
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
    assert stops > 0 and runs >= 1  # how often the storm interrupted depends on the host
