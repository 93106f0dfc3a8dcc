"""A test driver that plays the guest OS's side of the hotplug protocol.

Everything goes through the same entry points an executing backend uses:
guest MMIO (:meth:`VirtMachine.mmio_read` / ``mmio_write``), PSCI calls made
*by a given CPU* (:meth:`VirtMachine.psci_call`) and GIC system registers.
The high-level helpers do what the bundled guest and Linux do: ``scan`` is
ACPI ``CSCN``; ``handle_hotplug`` onlines inserted CPUs and offlines and
ejects removed ones.
"""

from __future__ import annotations

from vcpuhp import memmap
from vcpuhp.gic import (
    GICD_CTLR,
    GICD_IGROUPR,
    GICD_IPRIORITYR,
    GICD_IROUTER,
    GICD_ISENABLER,
    GICR_WAKER,
)
from vcpuhp.testing.guest import (
    OST_DEVICE_CHECK,
    OST_EJECT_REQUEST,
    OST_FAILURE,
    OST_SUCCESS,
    SECONDARY_ENTRY,
    HotplugEvent,
    ScriptedGuest,
)
from vcpuhp_null.backend import NullBackend

__all__ = [
    "OST_DEVICE_CHECK",
    "OST_EJECT_REQUEST",
    "OST_FAILURE",
    "OST_SUCCESS",
    "SECONDARY_ENTRY",
    "GuestDriver",
    "HotplugEvent",
]


class GuestDriver(ScriptedGuest):
    """Plays the guest on a machine with the null backend, GIC included.

    The protocol steps come from :class:`vcpuhp.testing.guest.ScriptedGuest`;
    this adds what only the userspace GIC model allows from outside (set-up,
    acknowledge, end of interrupt), the null backend's deferred starts, and
    steps that never wait (null vCPUs start at once, or when told to).
    """

    def start(self, index: int) -> None:
        """Let a deferred start proceed (null backend with ``defer-start=on``)."""
        backend = self.machine.backend
        if not isinstance(backend, NullBackend):
            raise TypeError("deferred starts exist only on the null backend")
        backend.start(index)

    def bring_up(self, index: int) -> bool:
        """``CPU_ON`` without waiting (a null vCPU starts at once, or when told to), then the
        CPU's GIC set-up if it runs; whether ``CPU_ON`` succeeded (the ``_OST`` status)."""
        result = self.cpu_on(index)
        if result == 0 and self.machine.vcpus[index].online:
            self.init_gic(index)
        return result == 0

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
        (the guest's ``maxcpus=``), without waiting for the boot CPU."""
        self.init_gic()
        for index in self.cold_booted_secondaries(maxcpus):
            self.bring_up(index)
