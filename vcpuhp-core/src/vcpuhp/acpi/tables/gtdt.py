"""The Generic Timer Description Table, revision 3 (ACPI 6.5 section 5.2.25).

The per-CPU architected timers' PPIs, level-triggered and active-high as on
QEMU's ``virt`` board; no memory-mapped timers and no platform timers.
"""

from __future__ import annotations

import struct
from typing import Final

from vcpuhp import memmap
from vcpuhp.acpi.tables.sdt import sdt

GTDT_REVISION: Final = 3
NOT_PROVIDED: Final = 0xFFFF_FFFF_FFFF_FFFF
"""CntControlBase / CntReadBase when there is no memory-mapped counter."""
TIMER_EDGE: Final = 1 << 0
TIMER_ACTIVE_LOW: Final = 1 << 1
TIMER_ALWAYS_ON: Final = 1 << 2
LEVEL_ACTIVE_HIGH: Final = 0


def build_gtdt() -> bytes:
    """The GTDT of the ``virt`` machine."""
    body = struct.pack(
        "<QI" + "II" * 4 + "QII" + "II",
        NOT_PROVIDED,                                        # CntControlBase
        0,                                                   # reserved
        memmap.PPI_SECURE_PHYS_TIMER, LEVEL_ACTIVE_HIGH,
        memmap.PPI_NONSECURE_PHYS_TIMER, LEVEL_ACTIVE_HIGH | TIMER_ALWAYS_ON,
        memmap.PPI_VIRT_TIMER, LEVEL_ACTIVE_HIGH | TIMER_ALWAYS_ON,
        memmap.PPI_HYP_TIMER, LEVEL_ACTIVE_HIGH | TIMER_ALWAYS_ON,
        NOT_PROVIDED,                                        # CntReadBase
        0, 0,                                                # platform timers: none
        0, 0,                                                # virtual EL2 timer: none
    )
    return sdt(b"GTDT", GTDT_REVISION, body)
