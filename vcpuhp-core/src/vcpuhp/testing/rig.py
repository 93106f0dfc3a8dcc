"""A machine under test with everything the suite watches it through.

A :class:`Rig` is a realized :class:`~vcpuhp.testing.probe.ProbedMachine` on
the backend under test (a :func:`~vcpuhp.testing.probe.probed` instance), a
:class:`~vcpuhp.testing.guest.ScriptedGuest` for protocol steps by hand, and,
for ``guest="cooperative"``, something that answers hotplug like an OS: the
bundled guest on a backend that executes guest code, a
:class:`~vcpuhp.testing.guest.CooperativeGuest` on one that does not. With
``guest="scripted"`` nothing answers: an executing backend runs
:func:`~vcpuhp.testing.guest.quiet_guest_image` and the test plays the guest.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from vcpuhp import events as ev
from vcpuhp import memmap
from vcpuhp.backend import rule
from vcpuhp.testing.guest import CooperativeGuest, ScriptedGuest
from vcpuhp.testing.probe import ContractProbe, ProbedMachine
from vcpuhp.vcpu import Vcpu, VcpuState

GuestKind = Literal["cooperative", "scripted"]

NON_BLOCKING_BOUND: Final = 1.0
"""Seconds a non-blocking contract method may take, measured around the call.

A contract check, not a performance figure: generous enough for a slow
emulated host, small enough that a method which waits for its vCPU thread
(or sleeps a couple of seconds) fails."""

BUNDLED_GUEST_MAGIC: Final = 0x47504856
"""The bundled guest's status page magic ("VHPG"), set once it booted."""
BUNDLED_GUEST_IDLE: Final = 1


@dataclass(frozen=True)
class Timeouts:
    """How long the suite waits, scaled by ``--vcpuhp-timeout-scale``.

    ``gap``: the test checks a capability the backend lacks (a strict
    xfail); it is expected to fail, so it waits only briefly.
    """

    scale: float = 1.0
    gap: bool = False

    @property
    def settle(self) -> float:
        """Longest wait for something the machine or guest must do."""
        return (3.0 if self.gap else 30.0) * self.scale

    @property
    def quiet(self) -> float:
        """How long the suite watches for something that must *not* happen."""
        return 0.3 * self.scale

    @property
    def deadlock(self) -> float:
        """How long a call may take before the suite calls it a deadlock."""
        return 10.0 * self.scale


class Rig:
    """One realized machine on the backend under test, and the means to watch it."""

    def __init__(self, machine: ProbedMachine, probe: ContractProbe, timeouts: Timeouts,
                 guest_kind: GuestKind, maxcpus: int | None) -> None:
        self.machine = machine
        self.probe = probe
        self.timeouts = timeouts
        self.guest_kind = guest_kind
        self.maxcpus = maxcpus
        self.guest = ScriptedGuest(machine, timeout=timeouts.settle)
        self.cooperative: CooperativeGuest | None = None
        self.poisoned = False
        """Set when a deadlock was detected: the machine is then not shut down."""

    @property
    def executes(self) -> bool:
        """Whether the backend runs guest code."""
        return self.machine.backend.capabilities.executes_guest_code

    # -- start --------------------------------------------------------------------------

    def start_guest(self) -> None:
        """Wait until the guest booted (and start the cooperative guest where one is needed)."""
        if self.guest_kind == "scripted":
            self.guest.wait_online(0)
            return
        if not self.executes:
            self.cooperative = CooperativeGuest(self.machine, self.maxcpus,
                                                timeout=self.timeouts.settle)
            self.cooperative.start()
            return
        self.wait_until(self.bundled_guest_idle, "the bundled guest to finish booting")

    def bundled_guest_idle(self) -> bool:
        """The bundled guest's status page says it booted and waits for events."""
        memory = self.machine.memory
        if memory is None:
            return False
        magic, _version, _possible, state = struct.unpack(
            "<IIII", memory.read(memmap.GUEST_STATUS_ADDR, 16))
        return bool(magic == BUNDLED_GUEST_MAGIC and state == BUNDLED_GUEST_IDLE)

    def close(self) -> None:
        """Stop the cooperative guest and shut the machine down (unless poisoned)."""
        if self.cooperative is not None:
            self.cooperative.close()
        if not self.poisoned:
            self.machine.shutdown()

    # -- waiting ------------------------------------------------------------------------

    def guest_errors(self) -> str:
        """What the cooperative guest ran into, for failure messages."""
        if self.cooperative is None or not self.cooperative.errors:
            return ""
        return "; the guest reported: " + "; ".join(map(str, self.cooperative.errors[-3:]))

    def wait_until(self, predicate: Callable[[], bool], what: str,
                   timeout: float | None = None) -> None:
        """Poll ``predicate`` until true; AssertionError naming ``what`` otherwise."""
        limit = self.timeouts.settle if timeout is None else timeout
        deadline = time.monotonic() + limit
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {limit:.1f}s for {what}{self.guest_errors()}")
            time.sleep(0.005)

    def wait_state(self, index: int, state: VcpuState, why: str = "") -> None:
        """Wait until CPU ``index`` is in ``state``."""
        vcpu = self.machine.vcpus[index]
        suffix = f" ({why})" if why else ""
        try:
            self.wait_until(lambda: vcpu.state is state, f"CPU {index} to be {state.value}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; it is {vcpu.state.value}{suffix}") from None

    def wait_online(self, indices: set[int] | frozenset[int]) -> None:
        """Wait until exactly ``indices`` are online."""
        self.wait_until(lambda: self.machine.cpu_masks().online == indices,
                        f"online CPUs {sorted(indices)} (online now: "
                        f"{sorted(self.machine.cpu_masks().online)})")

    # -- hotplug with a cooperative guest ---------------------------------------------

    def plug(self, index: int, device_id: str) -> Vcpu:
        """``device_add`` slot ``index`` and wait until the guest onlined it."""
        props = self.machine.topology.slots[index].props()
        vcpu = self.machine.device_add(self.machine.config.cpu_type, device_id, **props)
        self.wait_state(index, VcpuState.ONLINE,
                        f"the guest should online it; {rule('vcpu-started')}")
        return vcpu

    def unplug(self, device_id: str) -> ev.MachineEvent:
        """``device_del`` and wait for its ``DEVICE_DELETED``."""
        with self.machine.events.recorder() as recorder:
            self.machine.device_del(device_id)
            try:
                return recorder.wait_for(ev.DEVICE_DELETED,
                                         lambda e: e.data["device"] == device_id,
                                         timeout=self.timeouts.settle)
            except TimeoutError as exc:
                raise AssertionError(f"{exc}{self.guest_errors()}") from None

    def cycle(self, index: int, device_id: str) -> None:
        """Plug slot ``index``, wait until it runs, unplug it, wait until it is gone."""
        self.plug(index, device_id)
        self.unplug(device_id)

    # -- scripted protocol steps ---------------------------------------------------------

    def scripted_plug(self, index: int, device_id: str, *, online: bool = True) -> Vcpu:
        """``device_add`` and, playing the guest, scan and (optionally) ``CPU_ON`` it."""
        props = self.machine.topology.slots[index].props()
        vcpu = self.machine.device_add(self.machine.config.cpu_type, device_id, **props)
        self.guest.scan()
        if online:
            assert self.guest.cpu_on(index) == 0, f"CPU_ON of CPU {index} failed"
            self.guest.wait_online(index)
        return vcpu

    def scripted_unplug(self, index: int) -> None:
        """Playing the guest: the CPU calls ``CPU_OFF`` on itself, then ``_EJ0``."""
        if self.machine.vcpus[index].online:
            assert self.guest.cpu_off(index) == 0, f"CPU_OFF of CPU {index} failed"
        self.machine.eject(index)


def run_bounded(fn: Callable[[], Any], timeout: float) -> tuple[bool, BaseException | None]:
    """Run ``fn`` on a daemon thread; ``(finished, error)`` after at most ``timeout`` s.

    A call that deadlocks leaves its thread behind (a daemon): the suite
    reports the deadlock instead of hanging.
    """
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="vcpuhp-suite-bounded", daemon=True)
    thread.start()
    thread.join(timeout)
    return (not thread.is_alive(), errors[0] if errors else None)


__all__ = ["NON_BLOCKING_BOUND", "GuestKind", "Rig", "Timeouts", "run_bounded"]
