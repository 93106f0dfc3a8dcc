"""Software interrupt delivery: busy vCPUs, vCPUs in wfi, interrupts raised while masked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from unicorn_testlib import read_u64, require_unicorn, wait_until

require_unicorn()

from unicorn_guests import (  # noqa: E402
    COUNTER,
    DONE,
    DONE_MAGIC,
    FATAL,
    IRQ_COUNT,
    IRQ_LAST,
    RESULTS,
    SGI_TAKEN,
    irq_guest,
    sgi_to_self_guest,
    write_image,
)

from vcpuhp import memmap  # noqa: E402
from vcpuhp.machine import VirtMachine  # noqa: E402

MakeMachine = Callable[..., VirtMachine]
SPI = 5


def irqs(machine: VirtMachine) -> int:
    return read_u64(machine, RESULTS + IRQ_COUNT)


def boot(unicorn_machine: MakeMachine, tmp_path: Path, **kwargs: object) -> VirtMachine:
    image = write_image(tmp_path, irq_guest(SPI, **kwargs))  # type: ignore[arg-type]
    machine = unicorn_machine("cpus=1,maxcpus=2", kernel=image)
    wait_until(lambda: read_u64(machine, RESULTS + DONE) == 1, what="GIC set up by the guest")
    return machine


@pytest.mark.parametrize("idle", ["busy", "wfi"])
def test_each_raised_spi_runs_the_guest_handler_once(
    unicorn_machine: MakeMachine, tmp_path: Path, idle: str
) -> None:
    machine = boot(unicorn_machine, tmp_path, idle=idle)
    for n in range(1, 6):
        machine.gic.set_spi(SPI)
        wait_until(lambda n=n: irqs(machine) == n, what=f"interrupt {n} handled")  # type: ignore[misc]
    assert read_u64(machine, RESULTS + IRQ_LAST) == memmap.spi_intid(SPI)
    assert read_u64(machine, RESULTS + FATAL) == 0, "an unexpected vector was taken"
    if idle == "busy":
        before = read_u64(machine, RESULTS + COUNTER)
        wait_until(lambda: read_u64(machine, RESULTS + COUNTER) > before, what="eret to the loop")
    assert machine.backend_stats()["total_irqs_delivered"] == 5
    assert irqs(machine) == 5


def test_an_interrupt_raised_while_masked_is_taken_once_the_guest_unmasks(
    unicorn_machine: MakeMachine, tmp_path: Path
) -> None:
    machine = boot(unicorn_machine, tmp_path, masked_spins=3_000_000, idle="busy")
    machine.gic.set_spi(SPI)  # the guest still spins with PSTATE.I set
    assert irqs(machine) == 0
    wait_until(lambda: irqs(machine) == 1, what="the masked interrupt after daifclr")
    assert read_u64(machine, RESULTS + FATAL) == 0


def test_no_interrupt_is_delivered_when_none_is_pending(
    unicorn_machine: MakeMachine, tmp_path: Path
) -> None:
    machine = boot(unicorn_machine, tmp_path, idle="busy")
    before = read_u64(machine, RESULTS + COUNTER)
    wait_until(lambda: read_u64(machine, RESULTS + COUNTER) > before + 100_000,
               what="the guest to run a while")
    assert irqs(machine) == 0
    stats = machine.backend_stats()
    assert stats["total_irqs_delivered"] == 0
    # The GIC kicks a CPU after each write that may concern it (the guest's GICD and
    # ICC_* set-up); from the CPU's own access, with nothing pending, its run goes on.
    assert stats["total_stops_requested"] == 0


def test_an_sgi_a_cpu_sends_itself_is_taken_right_after_the_write_without_a_stop(
    unicorn_machine: MakeMachine, tmp_path: Path
) -> None:
    sgis = 3
    image = write_image(tmp_path, sgi_to_self_guest(sgis))
    machine = unicorn_machine("cpus=1,maxcpus=2", kernel=image)
    wait_until(lambda: read_u64(machine, RESULTS + DONE) == DONE_MAGIC, what="the SGIs sent")
    assert [read_u64(machine, RESULTS + SGI_TAKEN + 8 * n) for n in range(sgis)] == [1, 2, 3]
    assert read_u64(machine, RESULTS + IRQ_LAST) == 1
    assert read_u64(machine, RESULTS + FATAL) == 0
    stats = machine.backend_stats()
    assert stats["total_irqs_delivered"] == sgis
    assert stats["total_stops_requested"] == 0
