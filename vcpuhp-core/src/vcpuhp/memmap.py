"""The ``virt`` machine's physical memory map and interrupt numbers.

The layout is QEMU's ``virt`` board (``hw/arm/virt.c``), so guests and tools
feel at home. The CPU hotplug register block sits where QEMU's arm64 vCPU
hotplug RFC series places it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

KiB: Final = 1024
MiB: Final = 1024 * KiB
GiB: Final = 1024 * MiB


@dataclass(frozen=True)
class Region:
    """A guest-physical address range."""

    name: str
    base: int
    size: int

    @property
    def end(self) -> int:
        """One past the last address."""
        return self.base + self.size

    def contains(self, addr: int, size: int = 1) -> bool:
        """Whether ``[addr, addr + size)`` lies wholly inside the region."""
        return self.base <= addr and addr + size <= self.end


GICD: Final = Region("gicd", 0x0800_0000, 0x1_0000)
GICR_FRAME_SIZE: Final = 0x1_0000
"""One redistributor frame (RD_base or SGI_base)."""
GICR_STRIDE: Final = 2 * GICR_FRAME_SIZE
"""One GICv3 redistributor: an RD_base frame followed by an SGI_base frame."""
GICR_REGION0: Final = Region("gicr0", 0x080A_0000, 0x00F6_0000)
"""Low redistributor region: room for 123 redistributors."""
GICR_REGION_HIGH: Final = Region("gicr-high", 0x40_0000_0000, 64 * MiB)
"""High redistributor region (QEMU's ``VIRT_HIGH_GIC_REDIST2``): up to 512 more."""
UART: Final = Region("pl011", 0x0900_0000, 0x1000)
ACPI_GED: Final = Region("acpi-ged", 0x0908_0000, 0x1000)
CPU_HOTPLUG: Final = Region("cpu-hotplug", 0x090C_0000, 12)
RAM_BASE: Final = 0x4000_0000

#: Shared peripheral interrupts (SPI numbers; INTID = 32 + SPI).
UART_SPI: Final = 1
ACPI_GED_SPI: Final = 9
SPI_BASE_INTID: Final = 32

#: Private peripheral interrupt INTIDs.
PPI_PMU: Final = 23
PPI_GIC_MAINTENANCE: Final = 25
PPI_VIRT_TIMER: Final = 27
PPI_NONSECURE_PHYS_TIMER: Final = 30
PPI_SECURE_PHYS_TIMER: Final = 29
PPI_HYP_TIMER: Final = 26

#: Boot layout inside RAM (see ``vcpuhp-core/guest/README.md``).
ACPI_TABLES_ADDR: Final = RAM_BASE
ACPI_TABLES_MAX: Final = 1 * MiB
CMDLINE_ADDR: Final = RAM_BASE + 0x10_0000
CMDLINE_MAX: Final = 4 * KiB
GUEST_STATUS_ADDR: Final = RAM_BASE + 0x18_0000
KERNEL_LOAD_ADDR: Final = RAM_BASE + 0x20_0000


def spi_intid(spi: int) -> int:
    """The GIC INTID of shared peripheral interrupt ``spi``."""
    return SPI_BASE_INTID + spi
