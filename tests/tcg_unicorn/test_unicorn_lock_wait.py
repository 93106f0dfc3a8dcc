"""A vCPU thread waiting for the machine lock can be joined by the thread that holds it.

Eject holds the machine lock while it unrealizes (joins) the ejected CPU's
thread; if that thread is blocked on the lock in the middle of an MMIO access
it must give up at once, woken by the power-off/exit request, not by a timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from unicorn_testlib import read_u64, require_unicorn, wait_until

require_unicorn()

import a64asm as a  # noqa: E402
from unicorn_guests import BASE, COUNTER, CPU_ON_64, RESULTS, write_image  # noqa: E402

from vcpuhp import memmap  # noqa: E402
from vcpuhp.machine import VirtMachine  # noqa: E402
from vcpuhp.vcpu import VcpuState  # noqa: E402
from vcpuhp_tcg_unicorn.backend import UnicornBackend  # noqa: E402

MakeMachine = Callable[..., VirtMachine]


def uart_writer_on_cpu1() -> a.Program:
    """CPU 0 starts CPU 1 on a loop of UART writes (each a machine call), then counts."""
    p = a.Program(BASE)(a.mov64(9, RESULTS))
    p(a.mov64(0, CPU_ON_64), a.movz(1, 1), a.movz(3, 0)).mov_label(2, "writer")(a.hvc(0))
    p.label("count")(a.add_imm(5, 5, 1), a.str64(5, 9, COUNTER)).b("count")
    p.label("writer")(a.mov64(1, memmap.UART.base), a.movz(2, 0x2E))
    p.label("write")(a.str32(2, 1)).b("write")
    return p


def test_the_lock_holder_can_unrealize_a_vcpu_that_waits_for_the_lock(
    unicorn_machine: MakeMachine, tmp_path: Path
) -> None:
    image = write_image(tmp_path, uart_writer_on_cpu1())
    machine = unicorn_machine("cpus=2,maxcpus=2", kernel=image)
    backend = machine.backend
    assert isinstance(backend, UnicornBackend)
    wait_until(lambda: machine.vcpus[1].state is VcpuState.ONLINE, what="CPU 1 running")
    wait_until(lambda: read_u64(machine, RESULTS + COUNTER) > 0, what="CPU 0 counting")
    vcpu = backend.vcpus[1]
    with machine.lock:  # as eject holds it
        wait_until(lambda: vcpu._blocked_on_machine, what="CPU 1 blocked on the machine lock")
        backend.power_off(vcpu)
        backend.unrealize_vcpu(vcpu)  # joins the thread: it must give up its wait
        assert not vcpu.thread_alive
        vcpu.realized = False
        machine.vcpus[1].state = VcpuState.POWERED_OFF
    stats = backend.stats()
    assert stats["threads"] == 1 and stats["total_threads_joined"] == 1
