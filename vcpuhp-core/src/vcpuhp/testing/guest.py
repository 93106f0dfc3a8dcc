"""The guest OS's side of the hotplug protocol, played over the machine API.

On a backend that does not execute guest code, nothing inside the machine
answers a hotplug: a program outside it has to play the guest. These classes
do, through the entry points an executing backend uses -- guest MMIO
(:meth:`~vcpuhp.machine.VirtMachine.mmio_read` / ``mmio_write``) and PSCI
calls made *on behalf of a given CPU*
(:meth:`~vcpuhp.machine.VirtMachine.psci_call`) -- and never the interrupt
controller, so they work whether the GIC is the userspace model or the
backend's own (``in_kernel_irqchip``).

* :class:`ScriptedGuest` does one protocol step per call (scan, ``CPU_ON``,
  ``CPU_OFF``, ``_EJ0``, ``_OST``), for tests that drive the guest by hand.
* :class:`CooperativeGuest` runs a :class:`ScriptedGuest` on its own thread
  and answers every hotplug request the way the bundled guest and Linux do:
  it onlines inserted CPUs and offlines and ejects removed ones. It respects
  pause (a paused machine's guest runs nothing) and boots again after a
  system reset.

On a backend that executes guest code, the machine runs the bundled guest
firmware, which does all this itself; :func:`quiet_guest_image` is a guest
that does nothing at all (every CPU waits in ``wfi``), for tests that play
the protocol by hand with a :class:`ScriptedGuest` on an executing backend.
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from vcpuhp import events as ev
from vcpuhp import memmap
from vcpuhp.backend import rule
from vcpuhp.devices import cpu_hotplug as reg
from vcpuhp.devices.ged import GED_EVENT_CPU_HOTPLUG
from vcpuhp.errors import VcpuhpError
from vcpuhp.machine import RunState, VirtMachine
from vcpuhp.psci import PsciFunction
from vcpuhp.vcpu import VcpuState

_log = logging.getLogger(__name__)

OST_DEVICE_CHECK: Final = 0x01
OST_EJECT_REQUEST: Final = 0x03
OST_SUCCESS: Final = 0x00
OST_FAILURE: Final = 0x01
SECONDARY_ENTRY: Final = memmap.KERNEL_LOAD_ADDR
"""Where secondary CPUs start (``CPU_ON`` entry point)."""
_POLL: Final = 0.005

_WFI: Final = 0xD503207F
_BRANCH_BACK: Final = 0x17FFFFFF  # b .-4


def quiet_guest_image(directory: Path) -> Path:
    """Write a raw AArch64 image whose every CPU loops on ``wfi``; returns its path.

    Loaded at the kernel address and used as the ``CPU_ON`` entry point, it
    makes an executing backend run real guest code that never touches a
    device, so a :class:`ScriptedGuest` can play the protocol undisturbed.
    """
    path = directory / "vcpuhp-quiet-guest.bin"
    path.write_bytes(struct.pack("<II", _WFI, _BRANCH_BACK))
    return path


@dataclass(frozen=True)
class HotplugEvent:
    """One CPU the scan found with an event."""

    index: int
    kind: Literal["insert", "remove"]


class GuestTimeout(AssertionError):
    """The machine did not reach a state the guest waited for."""


class ScriptedGuest:
    """The guest OS's side of the protocol, one step per call.

    :param timeout: how long a step waits for a CPU to come online after
        ``CPU_ON`` (an executing backend starts it on its own thread).
    """

    def __init__(self, machine: VirtMachine, boot_cpu: int = 0, timeout: float = 30.0) -> None:
        self.machine = machine
        self.boot_cpu = boot_cpu
        self.timeout = timeout

    # -- raw accesses -------------------------------------------------------------------

    def read(self, addr: int, size: int) -> int:
        """Guest read of ``size`` bytes by the boot CPU."""
        return self.machine.mmio_read(addr, size, cpu=self.boot_cpu)

    def write(self, addr: int, size: int, value: int) -> None:
        """Guest write of ``size`` bytes by the boot CPU."""
        self.machine.mmio_write(addr, size, value, cpu=self.boot_cpu)

    def psci(self, cpu: int, function_id: int, *args: int) -> int:
        """PSCI call made by CPU ``cpu``; the signed result."""
        return self.machine.psci_call(cpu, function_id, *args)

    def mpidr(self, index: int) -> int:
        """The MPIDR value of CPU ``index``."""
        return self.machine.topology.slots[index].mpidr

    # -- PSCI ---------------------------------------------------------------------------

    def cpu_on(self, target: int, caller: int | None = None,
               entry_point: int = SECONDARY_ENTRY) -> int:
        """PSCI ``CPU_ON`` of CPU ``target`` (context id = its index)."""
        return self.psci(self.boot_cpu if caller is None else caller, PsciFunction.CPU_ON_64,
                         self.mpidr(target), entry_point, target)

    def cpu_off(self, cpu: int) -> int:
        """PSCI ``CPU_OFF`` made by CPU ``cpu`` itself."""
        return self.psci(cpu, PsciFunction.CPU_OFF)

    def affinity_info(self, target: int, caller: int | None = None) -> int:
        """PSCI ``AFFINITY_INFO`` of CPU ``target`` at level 0."""
        return self.psci(self.boot_cpu if caller is None else caller,
                         PsciFunction.AFFINITY_INFO_64, self.mpidr(target), 0)

    def system_reset(self, caller: int | None = None) -> int:
        """PSCI ``SYSTEM_RESET`` made by the boot CPU (or ``caller``)."""
        return self.psci(self.boot_cpu if caller is None else caller, PsciFunction.SYSTEM_RESET)

    def wait_online(self, index: int, timeout: float | None = None) -> None:
        """Wait until CPU ``index`` runs; :class:`GuestTimeout` quoting the
        ``vcpu_started`` rule if it does not."""
        self._wait_start(index, timeout, until_online=True)

    def wait_started(self, index: int, timeout: float | None = None) -> bool:
        """What a guest does after ``CPU_ON``: wait while CPU ``index`` is still on its
        way up; whether it came online (``False``: something powered it off meanwhile,
        such as a reset). :class:`GuestTimeout` if it never leaves ``on-pending``."""
        return self._wait_start(index, timeout, until_online=False)

    def _wait_start(self, index: int, timeout: float | None, until_online: bool) -> bool:
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        vcpu = self.machine.vcpus[index]
        while vcpu.state is not VcpuState.ONLINE:
            if not until_online and vcpu.state is not VcpuState.ON_PENDING:
                return False
            if time.monotonic() > deadline:
                raise GuestTimeout(
                    f"CPU {index} is {vcpu.state.value} {limit:.1f}s after power_on "
                    f"({rule('vcpu-started')})"
                )
            if self.machine.is_shut_down:
                raise GuestTimeout(f"machine shut down while waiting for CPU {index}")
            time.sleep(_POLL)
        return True

    # -- the CPU hotplug register block ---------------------------------------------------

    @staticmethod
    def _hp(offset: int) -> int:
        return memmap.CPU_HOTPLUG.base + offset

    def select(self, index: int) -> None:
        """Write the CPU selector."""
        self.write(self._hp(reg.OFF_SELECTOR), 4, index)

    def flags(self) -> int:
        """Read the selected CPU's flags."""
        return self.read(self._hp(reg.OFF_FLAGS), 1)

    def write_flags(self, value: int) -> None:
        """Write the selected CPU's flags byte."""
        self.write(self._hp(reg.OFF_FLAGS), 1, value)

    def command(self, command: int) -> None:
        """Write the command byte."""
        self.write(self._hp(reg.OFF_COMMAND), 1, command)

    def data(self) -> int:
        """Read command data."""
        return self.read(self._hp(reg.OFF_DATA), 4)

    def write_data(self, value: int) -> None:
        """Write command data."""
        self.write(self._hp(reg.OFF_DATA), 4, value)

    def arch_id(self, index: int) -> int:
        """Command 3: the arch id of CPU ``index``."""
        self.select(index)
        self.command(reg.CMD_GET_ARCH_ID)
        return self.data() | (self.read(self._hp(reg.OFF_SELECTOR), 4) << 32)

    def eject(self, index: int) -> None:
        """``_EJ0``: eject CPU ``index``."""
        self.select(index)
        self.write_flags(reg.FLAG_EJECT)

    def ost(self, index: int, event: int, status: int) -> None:
        """``_OST(event, status)`` for CPU ``index``."""
        self.select(index)
        self.command(reg.CMD_OST_EVENT)
        self.write_data(event)
        self.command(reg.CMD_OST_STATUS)
        self.write_data(status)

    def read_ged(self) -> int:
        """Read (and clear) the GED event selector."""
        return self.read(memmap.ACPI_GED.base, 4)

    def scan(self) -> list[HotplugEvent]:
        """ACPI ``CSCN``: collect and acknowledge every CPU with an insert or remove event."""
        found: list[HotplugEvent] = []
        for _ in range(2 * len(self.machine.vcpus)):
            self.command(reg.CMD_GET_NEXT_CPU_WITH_EVENT)
            index = self.data()
            self.select(index)
            flags = self.flags()
            if flags & reg.FLAG_INSERT:
                self.write_flags(reg.FLAG_INSERT)
                found.append(HotplugEvent(index, "insert"))
            elif flags & reg.FLAG_REMOVE:
                self.write_flags(reg.FLAG_REMOVE)
                found.append(HotplugEvent(index, "remove"))
            else:
                break
        return found

    # -- what an OS does -------------------------------------------------------------------

    def handle_hotplug(self, *, force: bool = False) -> list[HotplugEvent]:
        """What the guest does on the GED interrupt: scan, online inserted CPUs,
        offline and eject removed ones, report ``_OST`` for each.

        The ``_OST`` status is what really happened: success only when an
        inserted CPU came online, or a removed CPU is no longer enabled after
        ``_EJ0``. Like Linux, a CPU that ``CPU_OFF`` could not take offline is
        not ejected. Without ``force`` nothing is done unless the GED selector
        shows a CPU hotplug event.
        """
        if not self.read_ged() & GED_EVENT_CPU_HOTPLUG and not force:
            return []
        found = self.scan()
        for event in found:
            vcpu = self.machine.vcpus[event.index]
            if event.kind == "insert":
                started = self.bring_up(event.index)
                self.ost(event.index, OST_DEVICE_CHECK, OST_SUCCESS if started else OST_FAILURE)
            else:
                if vcpu.online:
                    self.cpu_off(event.index)
                if not vcpu.online:
                    self.eject(event.index)
                self.ost(event.index, OST_EJECT_REQUEST,
                         OST_FAILURE if vcpu.enabled else OST_SUCCESS)
        return found

    def bring_up(self, index: int) -> bool:
        """What the guest does to online CPU ``index``: ``CPU_ON``, then wait until it
        runs; whether it came online (the ``_OST`` status of an insert)."""
        return self.cpu_on(index) == 0 and self.wait_started(index)

    def cold_booted_secondaries(self, maxcpus: int | None = None) -> list[int]:
        """The cold-booted CPUs other than the boot CPU that a guest booted with
        ``maxcpus=`` onlines, in order (all of them without ``maxcpus``)."""
        cold = [slot.index for slot in self.machine.topology.cold_booted
                if slot.index != self.boot_cpu]
        return cold if maxcpus is None else cold[:max(maxcpus - 1, 0)]

    def boot(self, maxcpus: int | None = None) -> None:
        """Online the cold-booted CPUs up to ``maxcpus`` (the guest's ``maxcpus=``),
        once the boot CPU runs."""
        if not self.wait_started(self.boot_cpu):
            return  # reset again meanwhile: the next boot does it
        for index in self.cold_booted_secondaries(maxcpus):
            self.bring_up(index)


class CooperativeGuest:
    """A guest OS on its own thread, answering hotplug requests like Linux.

    Woken by the machine's events (a plug, an unplug request, a reset, a
    resume), it does what the bundled guest does on its GED interrupt. It
    never acts while the machine is paused, and after a ``RESET`` it boots
    again (``maxcpus``) once the boot CPU runs.
    """

    _WAKE_ON: Final = frozenset({ev.CPU_PLUGGED, ev.CPU_UNPLUG_REQUESTED, ev.RESET, ev.RESUME})

    def __init__(self, machine: VirtMachine, maxcpus: int | None = None,
                 timeout: float = 30.0) -> None:
        self.machine = machine
        self.guest = ScriptedGuest(machine, timeout=timeout)
        self.maxcpus = maxcpus
        self.errors: list[BaseException] = []
        """What went wrong while answering (reported by :meth:`close`'s caller)."""
        self._wakeups: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="vcpuhp-cooperative-guest",
                                        daemon=True)
        self._unsubscribe = machine.events.subscribe(self._on_event)

    def start(self) -> None:
        """Boot (online the cold-booted CPUs up to ``maxcpus``) and start answering."""
        self.guest.boot(self.maxcpus)
        self._thread.start()

    def _on_event(self, event: ev.MachineEvent) -> None:
        if event.name in self._WAKE_ON:
            self._wakeups.put(event.name)

    def _run(self) -> None:
        while True:
            name = self._wakeups.get()
            if name is None:
                return
            try:
                if self.machine.run_state is RunState.PAUSED:
                    continue  # the RESUME event wakes us again
                if self.machine.is_shut_down:
                    continue
                if name == ev.RESET:
                    self.guest.boot(self.maxcpus)
                self.guest.handle_hotplug(force=name == ev.RESUME)
            except (VcpuhpError, AssertionError) as exc:
                if not self.machine.is_shut_down:
                    _log.warning("cooperative guest: %s", exc)
                    self.errors.append(exc)
            except Exception as exc:
                _log.exception("cooperative guest: hotplug handling failed")
                self.errors.append(exc)

    def close(self) -> None:
        """Stop answering (the thread has ended when this returns)."""
        self._unsubscribe()
        self._wakeups.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout=30)


__all__ = [
    "CooperativeGuest",
    "GuestTimeout",
    "HotplugEvent",
    "ScriptedGuest",
    "quiet_guest_image",
]
