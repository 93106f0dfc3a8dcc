"""A test driver that plays the guest OS's side of the hotplug protocol.

Everything goes through the same entry points an executing backend uses:
guest MMIO (:meth:`VirtMachine.mmio_read` / ``mmio_write``), PSCI calls made
*by a given CPU* (:meth:`VirtMachine.psci_call`) and GIC system registers.
The high-level helpers do what the bundled guest and Linux do: ``scan`` is
ACPI ``CSCN``; ``handle_hotplug`` onlines inserted CPUs and offlines and
ejects removed ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vcpuhp import memmap
from vcpuhp.devices import cpu_hotplug as reg
from vcpuhp.devices.ged import GED_EVENT_CPU_HOTPLUG
from vcpuhp.gic import (
    GICD_CTLR,
    GICD_IGROUPR,
    GICD_IPRIORITYR,
    GICD_IROUTER,
    GICD_ISENABLER,
    GICR_WAKER,
)
from vcpuhp.machine import VirtMachine
from vcpuhp.psci import PsciFunction
from vcpuhp_null.backend import NullBackend

OST_DEVICE_CHECK = 0x01
OST_EJECT_REQUEST = 0x03
OST_SUCCESS = 0x00
OST_FAILURE = 0x01
SECONDARY_ENTRY = memmap.KERNEL_LOAD_ADDR


@dataclass(frozen=True)
class HotplugEvent:
    """One CPU the scan found with an event."""

    index: int
    kind: Literal["insert", "remove"]


class GuestDriver:
    """Plays the guest on a machine (usually one with the null backend)."""

    def __init__(self, machine: VirtMachine, boot_cpu: int = 0) -> None:
        self.machine = machine
        self.boot_cpu = boot_cpu

    # -- raw accesses ---------------------------------------------------------------

    def read(self, addr: int, size: int) -> int:
        """Guest read of ``size`` bytes."""
        return self.machine.mmio_read(addr, size, cpu=self.boot_cpu)

    def write(self, addr: int, size: int, value: int) -> None:
        """Guest write of ``size`` bytes."""
        self.machine.mmio_write(addr, size, value, cpu=self.boot_cpu)

    def psci(self, cpu: int, function_id: int, *args: int) -> int:
        """PSCI call made by CPU ``cpu``; the signed result."""
        return self.machine.psci_call(cpu, function_id, *args)

    def mpidr(self, index: int) -> int:
        """The MPIDR value of CPU ``index``."""
        return self.machine.topology.slots[index].mpidr

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

    def start(self, index: int) -> None:
        """Let a deferred start proceed (null backend with ``defer-start=on``)."""
        backend = self.machine.backend
        if not isinstance(backend, NullBackend):
            raise TypeError("deferred starts exist only on the null backend")
        backend.start(index)

    # -- the CPU hotplug register block -----------------------------------------------

    def _hp(self, offset: int) -> int:
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

    def handle_hotplug(self) -> list[HotplugEvent]:
        """What the guest does on the GED interrupt: scan, online inserted CPUs,
        offline and eject removed ones, report ``_OST`` for each.

        The ``_OST`` status is what really happened: success (0) only when an
        inserted CPU's ``CPU_ON`` returned 0, or a removed CPU is no longer
        enabled after ``_EJ0``; otherwise failure (1). Like Linux, a CPU that
        ``CPU_OFF`` could not take offline is not ejected.
        """
        if not self.read_ged() & GED_EVENT_CPU_HOTPLUG:
            return []
        found = self.scan()
        for event in found:
            vcpu = self.machine.vcpus[event.index]
            if event.kind == "insert":
                result = self.cpu_on(event.index)
                if result == 0 and vcpu.online:
                    self.init_gic(event.index)
                self.ost(event.index, OST_DEVICE_CHECK,
                         OST_SUCCESS if result == 0 else OST_FAILURE)
            else:
                if vcpu.online:
                    self.cpu_off(event.index)
                if not vcpu.online:
                    self.eject(event.index)
                self.ost(event.index, OST_EJECT_REQUEST,
                         OST_FAILURE if vcpu.enabled else OST_SUCCESS)
        return found

    def init_gic(self, cpu: int | None = None) -> None:
        """Set up the GIC as the guest does: distributor on, the GED SPI routed to the
        boot CPU, and ``cpu``'s redistributor and CPU interface enabled."""
        index = self.boot_cpu if cpu is None else cpu
        gicd = memmap.GICD.base
        ged = memmap.spi_intid(memmap.ACPI_GED_SPI)
        if index == self.boot_cpu:
            self.write(gicd + GICD_CTLR, 4, 0x12)
            self.write(gicd + GICD_IGROUPR + 4 * (ged // 32), 4, 1 << (ged % 32))
            self.write(gicd + GICD_IPRIORITYR + ged, 1, 0x80)
            route = self.machine.topology.slots[self.boot_cpu].arch_id
            self.write(gicd + GICD_IROUTER + 8 * ged, 4, route & 0xFFFF_FFFF)
            self.write(gicd + GICD_ISENABLER + 4 * (ged // 32), 4, 1 << (ged % 32))
        rd_base = self.machine.gic.redistributor_base(index)
        self.write(rd_base + GICR_WAKER, 4, 0)
        self.machine.sysreg_write(index, "ICC_PMR_EL1", 0xF0)
        self.machine.sysreg_write(index, "ICC_IGRPEN1_EL1", 1)

    def take_interrupt(self, cpu: int | None = None) -> int:
        """Acknowledge the highest-priority pending interrupt (``ICC_IAR1_EL1``)."""
        return self.machine.sysreg_read(self.boot_cpu if cpu is None else cpu, "ICC_IAR1_EL1")

    def end_interrupt(self, intid: int, cpu: int | None = None) -> None:
        """Signal end of interrupt (``ICC_EOIR1_EL1``)."""
        self.machine.sysreg_write(self.boot_cpu if cpu is None else cpu, "ICC_EOIR1_EL1", intid)

    def boot(self, maxcpus: int | None = None) -> None:
        """Initialise the GIC and online the cold-booted CPUs up to ``maxcpus``
        (the guest's ``maxcpus=``)."""
        self.init_gic()
        limit = len(self.machine.topology.cold_booted) if maxcpus is None else maxcpus
        online = 1
        for slot in self.machine.topology.cold_booted[1:]:
            if online >= limit:
                break
            self.cpu_on(slot.index)
            self.init_gic(slot.index)
            online += 1
