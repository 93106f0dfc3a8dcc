"""The bundled guest's scenarios, shared by the tests of every backend that runs it.

``tests/tcg_unicorn/test_unicorn_guest.py`` and ``tests/kvm/test_kvm_guest.py``
check the same things through the guest's documented interface
(``vcpuhp-core/guest/README.md``): the masks line it prints after boot and
after every hotplug scan, the status page's magic and per-CPU work counters
(which count the 10 Hz timer ticks of the secondaries), psci-probe's results;
never how fast it runs. A module makes the machines (its backend's fixture),
says how long a guest may take (:class:`BundledGuest` ``settle``: KVM nested
in TCG is slow) and adds what only its backend can show (parked vCPU fds,
translation contexts, the vGIC).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import pytest

from vcpuhp import MachineConfig, memmap
from vcpuhp import events as ev
from vcpuhp.boot import bundled_image
from vcpuhp.machine import VirtMachine
from vcpuhp.psci import PsciFunction
from vcpuhp.vcpu import VcpuState

MakeMachine = Callable[..., VirtMachine]
STATUS: Final = memmap.GUEST_STATUS_ADDR
STATUS_MAGIC: Final = 0x47504856
WORK_COUNTERS: Final = STATUS + 0x420
SEED_SMP: Final = "cpus=4,maxcpus=6"
SEED_GUEST_CMDLINE: Final = "maxcpus=2"
BOOT_MASKS: Final = "possible 0-5 present 0-5 enabled 0-3 online 0-1"
PLUGGED_MASKS: Final = "possible 0-5 present 0-5 enabled 0-4 online 0-1,4"
WATCH_STILL: Final = 0.2
"""Seconds a CPU that must not run is watched: two periods of the guest's 10 Hz tick."""
_POLL: Final = 0.002


def read_u64(machine: VirtMachine, addr: int) -> int:
    """A guest u64 at ``addr``."""
    assert machine.memory is not None
    return machine.memory.read_int(addr, 8)


def read_i64(machine: VirtMachine, addr: int) -> int:
    """A guest i64 at ``addr``."""
    value = read_u64(machine, addr)
    return value - (1 << 64) if value >> 63 else value


def work(machine: VirtMachine, cpu: int) -> int:
    """CPU ``cpu``'s work counter on the bundled guest's status page."""
    return read_u64(machine, WORK_COUNTERS + 8 * cpu)


def console_has(machine: VirtMachine, line: str) -> Callable[[], bool]:
    """A predicate: the guest printed exactly ``line``."""
    return lambda: line in machine.console


def wait_until(predicate: Callable[[], bool], timeout: float, what: str = "") -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(_POLL)


@contextlib.contextmanager
def machine_factory(accel: str, freed: Mapping[str, object], **defaults: Any
                    ) -> Iterator[MakeMachine]:
    """``make(smp, realize=True, **MachineConfig.build arguments)`` -> a machine on ``accel``
    (``defaults`` filled in); every machine made is shut down at the end, and then its
    backend's ``stats()`` must show ``freed`` (nothing left behind)."""
    made: list[VirtMachine] = []

    def make(smp: str = "cpus=2,maxcpus=4", *, realize: bool = True,
             **kwargs: Any) -> VirtMachine:
        machine = VirtMachine(MachineConfig.build(smp, accel=accel, **{**defaults, **kwargs}))
        made.append(machine)
        if realize:
            machine.realize()
        return machine

    yield make
    for machine in made:
        machine.shutdown()
        stats = machine.backend.stats()
        assert {key: stats[key] for key in freed} == freed, stats


@dataclass(frozen=True)
class BundledGuest:
    """A machine running the bundled guest, and how long it may take to answer."""

    machine: VirtMachine
    settle: float

    def wait_printed(self, line: str) -> None:
        """Wait until the guest printed ``line``."""
        wait_until(console_has(self.machine, line), self.settle, f"the guest to print {line!r}")

    def next_line(self, recorder: ev.EventRecorder, line: str) -> None:
        """Wait until the guest prints ``line`` (again) after ``recorder`` started."""
        recorder.wait_for(ev.CONSOLE, lambda e: e.data["line"] == line, timeout=self.settle)

    def advances(self, cpu: int) -> bool:
        """Whether CPU ``cpu``'s work counter moves on within ``settle``."""
        start = work(self.machine, cpu)
        deadline = time.monotonic() + self.settle
        while time.monotonic() < deadline:
            if work(self.machine, cpu) > start:
                return True
            time.sleep(_POLL)
        return False

    def stays_still(self, cpu: int) -> bool:
        """Whether CPU ``cpu``'s work counter stands still for :data:`WATCH_STILL`."""
        before = work(self.machine, cpu)
        time.sleep(WATCH_STILL)
        return work(self.machine, cpu) == before


# -- scenarios: each is the shared part of one test; the module adds its backend's checks ----


def boot_seed(make: MakeMachine, settle: float) -> BundledGuest:
    """The seed machine (``cpus=4,maxcpus=6``, guest ``maxcpus=2``), once the guest printed
    its boot masks."""
    guest = BundledGuest(make(SEED_SMP, guest_cmdline=SEED_GUEST_CMDLINE), settle)
    guest.wait_printed(BOOT_MASKS)
    return guest


def seed_scenario(guest: BundledGuest, *, when_plugged: Callable[[], None] = lambda: None
                  ) -> None:
    """The seed's plug and unplug of core 4, as the guest's masks and work counters show it.

    ``when_plugged`` runs once the guest printed the plugged masks.
    """
    machine = guest.machine
    assert read_u64(machine, STATUS) & 0xFFFF_FFFF == STATUS_MAGIC
    assert machine.cpu_masks().online == {0, 1}
    assert guest.advances(1)
    with machine.events.recorder() as recorder:
        machine.device_add(machine.config.cpu_type, "core4", **{"core-id": 4})
        guest.next_line(recorder, PLUGGED_MASKS)
        when_plugged()
        assert machine.cpu_masks().online == {0, 1, 4}
        assert guest.advances(4), "core 4's work counter does not advance"
        machine.device_del("core4")
        deleted = recorder.wait_for(ev.DEVICE_DELETED, timeout=guest.settle)
        assert deleted.data == {"device": "core4", "path": "/machine/peripheral/core4",
                                "cpu_index": 4}
        guest.next_line(recorder, BOOT_MASKS)
    assert machine.console[-1] == BOOT_MASKS
    assert machine.vcpus[4].state is VcpuState.UNPLUGGED
    assert guest.stays_still(4), "an ejected CPU must not run"
    machine.check_invariants()


def psci_probe(make: MakeMachine, settle: float) -> BundledGuest:
    """psci-probe on ``cpus=2,maxcpus=4``: its results on the status page say that
    ``CPU_ON`` of a CPU that is not enabled is ``DENIED``."""
    guest = BundledGuest(make("cpus=2,maxcpus=4", kernel=bundled_image("psci-probe.elf")),
                         settle)
    machine = guest.machine
    guest.wait_printed("psci-probe done")
    assert read_u64(machine, STATUS + 4) & 0xFFFF_FFFF == 8
    results = [read_i64(machine, STATUS + 8 + 8 * n) for n in range(8)]
    version, on, again, unknown, disabled, aff_on, aff_disabled, bad_fn = results
    assert version == 0x10001
    assert on == 0
    assert again == -4, "ALREADY_ON"
    assert unknown == -2, "INVALID_PARAMETERS"
    assert disabled == -3, "DENIED for a CPU that is not enabled"
    assert (aff_on, aff_disabled) == (0, 1)
    assert bad_fn == -1
    assert "psci cpu_on_disabled -> -3" in machine.console
    return guest


def pause_freezes_every_vcpu(guest: BundledGuest) -> None:
    """``stop`` freezes the guest's work counters; ``cont`` lets them move again."""
    machine = guest.machine
    assert guest.advances(1)
    machine.stop()
    assert guest.stays_still(1)
    assert machine.query_status()["status"] == "paused"
    machine.cont()
    assert guest.advances(1)


def cpu_plugged_while_paused_starts_after_resume(guest: BundledGuest) -> None:
    """A CPU plugged while the machine is paused is not onlined (the guest runs nothing)
    until ``cont``."""
    machine = guest.machine
    machine.stop()
    machine.device_add(machine.config.cpu_type, "core4", **{"core-id": 4})
    time.sleep(WATCH_STILL)
    assert machine.vcpus[4].state is VcpuState.POWERED_OFF  # the guest has not run
    with machine.events.recorder() as recorder:
        machine.cont()
        guest.next_line(recorder, PLUGGED_MASKS)


def system_reset_restarts_the_guest(guest: BundledGuest) -> None:
    """PSCI ``SYSTEM_RESET``: the guest boots again and prints its boot masks a second time."""
    machine = guest.machine
    with machine.events.recorder() as recorder:
        assert machine.psci_call(0, PsciFunction.SYSTEM_RESET) == 0
        recorder.wait_for(ev.RESET, timeout=guest.settle)
        guest.next_line(recorder, BOOT_MASKS)
    assert machine.console.count(BOOT_MASKS) == 2
    assert machine.cpu_masks().online == {0, 1}
    assert guest.advances(1)
    machine.check_invariants()
