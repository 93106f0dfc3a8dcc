"""The Multiple APIC Description Table for a GICv3 (ACPI 6.5 section 5.2.12).

Entries, in order: one GICC (type 0xB) per *possible* CPU, the GICD (type
0xC), one GICR (type 0xE) per redistributor region.

GICC entries use the 80-byte ACPI 6.3 form (MADT revision 5, as QEMU emits)
plus the ACPI 6.5 *Online Capable* flag, which Linux >= 6.11 honours: a CPU
enabled at boot is ``Enabled``, a hot-pluggable one ``Online Capable``, never
both. The GICR base field of every GICC is 0: redistributors are described
by the GICR structures only, which is what Linux needs to bring up a CPU that
was not enabled at boot.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from vcpuhp import memmap
from vcpuhp.acpi.tables.sdt import sdt

MADT_REVISION: Final = 5
GICC_TYPE: Final = 0x0B
GICC_SIZE: Final = 80
GICD_TYPE: Final = 0x0C
GICD_SIZE: Final = 24
GICR_TYPE: Final = 0x0E
GICR_SIZE: Final = 16
GICC_ENABLED: Final = 1 << 0
GICC_ONLINE_CAPABLE: Final = 1 << 3
GIC_VERSION_3: Final = 3

#: Field offsets inside a GICC entry (the bundled guest reads these).
GICC_OFF_FLAGS: Final = 12
GICC_OFF_GICR_BASE: Final = 60
GICC_OFF_MPIDR: Final = 68


@dataclass(frozen=True)
class GiccInfo:
    """What a GICC entry says about one possible CPU."""

    index: int
    """CPU interface number and ACPI processor UID."""
    mpidr: int
    """MPIDR affinity fields (the slot's arch id)."""
    enabled: bool
    """``True``: Enabled (usable at boot); ``False``: Online Capable."""


@dataclass(frozen=True)
class RedistributorRange:
    """A GICR structure: a redistributor discovery range."""

    base: int
    length: int


def gicc_entry(cpu: GiccInfo) -> bytes:
    """The 80-byte GICC structure of ``cpu``."""
    flags = GICC_ENABLED if cpu.enabled else GICC_ONLINE_CAPABLE
    return struct.pack(
        "<BBHIIIIIQQQQIQQBBH",
        GICC_TYPE, GICC_SIZE, 0,
        cpu.index,                      # CPU interface number
        cpu.index,                      # ACPI processor UID
        flags,
        0,                              # parking protocol version: PSCI is used
        memmap.PPI_PMU,                 # performance interrupt GSIV
        0,                              # parked address
        0,                              # physical base address (GICv2 only)
        0,                              # GICV
        0,                              # GICH
        memmap.PPI_GIC_MAINTENANCE,     # VGIC maintenance interrupt
        0,                              # GICR base: see the GICR structures
        cpu.mpidr,
        0,                              # processor power efficiency class
        0,                              # reserved
        0,                              # SPE overflow interrupt: none
    )


def gicd_entry() -> bytes:
    """The GICD structure: the distributor at its ``virt`` address, GIC version 3."""
    return struct.pack(
        "<BBHIQIB3s", GICD_TYPE, GICD_SIZE, 0, 0, memmap.GICD.base, 0, GIC_VERSION_3, b"\0\0\0"
    )


def gicr_entry(region: RedistributorRange) -> bytes:
    """A GICR structure for one redistributor region."""
    return struct.pack("<BBHQI", GICR_TYPE, GICR_SIZE, 0, region.base, region.length)


def build_madt(cpus: Sequence[GiccInfo], regions: Sequence[RedistributorRange]) -> bytes:
    """The MADT: GICCs for ``cpus`` in order, the GICD, then GICRs for ``regions``."""
    body = bytearray(struct.pack("<II", 0, 0))  # local interrupt controller address, flags
    for cpu in cpus:
        body += gicc_entry(cpu)
    body += gicd_entry()
    for region in regions:
        body += gicr_entry(region)
    return sdt(b"APIC", MADT_REVISION, bytes(body))
