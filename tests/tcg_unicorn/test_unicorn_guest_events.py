"""The bundled guest is event-driven: its CPUs sleep in WFI between interrupts, its work
counters count timer ticks, and the GED power button powers it off (PSCI SYSTEM_OFF)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

from unicorn_testlib import SETTLE, console_has, require_unicorn, wait_until

from cli_process import Serving
from guest_scenarios import work

require_unicorn()

from vcpuhp import events as ev  # noqa: E402
from vcpuhp.machine import RunState, VirtMachine  # noqa: E402
from vcpuhp_tcg_unicorn.backend import UnicornBackend  # noqa: E402

MakeMachine = Callable[..., VirtMachine]
ALL_ONLINE = "possible 0-3 present 0-3 enabled 0-3 online 0-3"
POWER_OFF_LINE = "vcpuhp-guest: power button: powering off"
TICK_SECONDS = 0.1
"""The bundled guest's secondaries tick at 10 Hz."""
PPI_VIRTUAL_TIMER = 27


def test_work_counters_count_timer_interrupts_not_loop_turns(
    unicorn_machine: MakeMachine,
) -> None:
    machine = unicorn_machine("cpus=4,maxcpus=4")
    wait_until(console_has(machine, ALL_ONLINE), what="every CPU online")
    wait_until(lambda: all(work(machine, cpu) >= 3 for cpu in (1, 2, 3)), what="3 ticks each")
    machine.stop()  # nothing runs: the counters and the interrupt counts hold still
    backend = machine.backend
    assert isinstance(backend, UnicornBackend)
    for cpu in (1, 2, 3):
        acknowledged = backend.vcpus[cpu].irqs_taken
        # One acknowledged interrupt per tick (the pause may fall between the
        # acknowledge and the increment); the one SGI_WAKE comes only at unplug.
        assert work(machine, cpu) <= acknowledged <= work(machine, cpu) + 1, cpu
    assert work(machine, 0) == 0, "the boot CPU has no tick: it sleeps until an event"
    machine.cont()


def test_every_cpu_sleeps_in_wfi_between_interrupts(unicorn_machine: MakeMachine) -> None:
    machine = unicorn_machine("cpus=4,maxcpus=4")
    wait_until(console_has(machine, ALL_ONLINE), what="every CPU online")
    backend = machine.backend
    assert isinstance(backend, UnicornBackend)
    # A vCPU waiting in wfi is outside its engine, asleep on its condition; over a few
    # ticks every CPU is seen that way (a spinning one never would be).
    asleep: set[int] = set()

    def all_seen_asleep() -> bool:
        asleep.update(index for index, vcpu in backend.vcpus.items() if vcpu.sleeping_in_wfi)
        return asleep == {0, 1, 2, 3}

    wait_until(all_seen_asleep, what="every vCPU asleep in wfi")


def test_the_power_button_powers_the_guest_off(unicorn_machine: MakeMachine) -> None:
    machine = unicorn_machine("cpus=2,maxcpus=4")
    wait_until(console_has(machine, "possible 0-3 present 0-3 enabled 0-1 online 0-1"),
               what="boot")
    with machine.events.recorder() as recorder:
        machine.system_powerdown()
        shutdown = recorder.wait_for(ev.SHUTDOWN, timeout=SETTLE)
    assert shutdown.data == {"guest": True, "reason": "guest-shutdown"}
    assert machine.run_state is RunState.SHUTDOWN
    assert POWER_OFF_LINE in machine.console


def _qmp(path: Path, *commands: str) -> list[bytes]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(SETTLE)
        sock.connect(str(path))
        stream = sock.makefile("rwb")
        replies = [stream.readline()]  # the greeting
        for command in ("qmp_capabilities", *commands):
            stream.write(b'{"execute": "%s"}\n' % command.encode())
            stream.flush()
            reply = stream.readline()
            while reply.startswith(b'{"event"'):  # e.g. SHUTDOWN before the reply
                reply = stream.readline()
            replies.append(reply)
        return replies


def test_vcpuhp_run_exits_0_when_the_power_button_powers_the_guest_off(
    vcpuhp_serving: Serving,
) -> None:
    proc, path = vcpuhp_serving("qmp", "--accel", "tcg-unicorn", "--smp", "cpus=2,maxcpus=2")
    replies = _qmp(path, "system_powerdown")
    assert replies[-1].strip() == b'{"return": {}}'
    assert proc.wait(timeout=SETTLE) == 0
    out, err = proc.communicate()
    assert f"guest| {POWER_OFF_LINE}" in out, err
    assert "event SHUTDOWN" in out



def test_no_timer_fires_while_the_machine_is_paused(unicorn_machine: MakeMachine) -> None:
    machine = unicorn_machine("cpus=2,maxcpus=2")
    wait_until(console_has(machine, "possible 0-1 present 0-1 enabled 0-1 online 0-1"),
               what="boot")
    wait_until(lambda: work(machine, 1) >= 1, what="a tick")
    machine.stop()
    expiries = machine.backend_stats()["total_timer_expiries"]
    frozen = work(machine, 1)
    time.sleep(3 * TICK_SECONDS)  # three tick periods: each would have fired
    assert PPI_VIRTUAL_TIMER not in machine.gic.cpus[1].pending_private
    assert machine.backend_stats()["total_timer_expiries"] == expiries
    assert work(machine, 1) == frozen
    machine.cont()
    wait_until(lambda: work(machine, 1) > frozen, what="ticks after resume")
