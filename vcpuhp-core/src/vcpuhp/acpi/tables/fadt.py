"""The Fixed ACPI Description Table, revision 6 (ACPI 6.5 section 5.2.9).

A hardware-reduced ARM platform: only the flags, the ARM boot
architecture flags (PSCI, and its conduit) and ``X_DSDT`` are non-zero.
"""

from __future__ import annotations

import struct
from typing import Final

from vcpuhp.acpi.tables.sdt import HEADER_SIZE, sdt

FADT_REVISION: Final = 6
FADT_MINOR_REVISION: Final = 3
"""ACPI 6.3, the table forms this package emits (QEMU's choice too)."""
FADT_SIZE: Final = 276
HW_REDUCED_ACPI: Final = 1 << 20
ARM_PSCI_COMPLIANT: Final = 1 << 0
ARM_PSCI_USE_HVC: Final = 1 << 1
OFF_FLAGS: Final = 112
OFF_ARM_BOOT_ARCH: Final = 129
OFF_MINOR_REVISION: Final = 131
OFF_X_DSDT: Final = 140


def build_fadt(dsdt_address: int, *, psci_hvc: bool = True) -> bytes:
    """A FADT pointing at the DSDT through ``X_DSDT``.

    :param psci_hvc: PSCI calls use HVC (``True``) or SMC (``False``).
    """
    body = bytearray(FADT_SIZE - HEADER_SIZE)

    def put(offset: int, fmt: str, value: int) -> None:
        struct.pack_into(fmt, body, offset - HEADER_SIZE, value)

    put(OFF_FLAGS, "<I", HW_REDUCED_ACPI)
    boot_arch = ARM_PSCI_COMPLIANT | (ARM_PSCI_USE_HVC if psci_hvc else 0)
    put(OFF_ARM_BOOT_ARCH, "<H", boot_arch)
    put(OFF_MINOR_REVISION, "<B", FADT_MINOR_REVISION)
    put(OFF_X_DSDT, "<Q", dsdt_address)
    return sdt(b"FACP", FADT_REVISION, bytes(body))
