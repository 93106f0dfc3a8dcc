"""PSCI function ids, return codes and argument decoding (Linux ``uapi/linux/psci.h``).

The machine is the firmware: :class:`vcpuhp.psci_firmware.PsciFirmware`
applies the hotplug policy (``CPU_ON`` of a CPU that is not enabled is
``DENIED``). This module only names things and decodes arguments.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class PsciFunction(IntEnum):
    """Function ids; ``*_64`` are the SMC64/HVC64 forms."""

    PSCI_VERSION = 0x8400_0000
    CPU_SUSPEND = 0x8400_0001
    CPU_OFF = 0x8400_0002
    CPU_ON = 0x8400_0003
    AFFINITY_INFO = 0x8400_0004
    MIGRATE_INFO_TYPE = 0x8400_0006
    SYSTEM_OFF = 0x8400_0008
    SYSTEM_RESET = 0x8400_0009
    PSCI_FEATURES = 0x8400_000A
    CPU_SUSPEND_64 = 0xC400_0001
    CPU_ON_64 = 0xC400_0003
    AFFINITY_INFO_64 = 0xC400_0004


class PsciReturn(IntEnum):
    """Return codes (as signed integers; the guest sees them in x0)."""

    SUCCESS = 0
    NOT_SUPPORTED = -1
    INVALID_PARAMETERS = -2
    DENIED = -3
    ALREADY_ON = -4
    ON_PENDING = -5
    INTERNAL_FAILURE = -6
    NOT_PRESENT = -7
    DISABLED = -8
    INVALID_ADDRESS = -9


class AffinityState(IntEnum):
    """``AFFINITY_INFO`` results."""

    ON = 0
    OFF = 1
    ON_PENDING = 2


PSCI_VERSION_1_1: Final = 0x0001_0001
MIGRATE_INFO_TYPE_NOT_NEEDED: Final = 2
"""Trusted OS not present: no migration needed."""

IMPLEMENTED: Final = frozenset(
    {
        PsciFunction.PSCI_VERSION, PsciFunction.CPU_SUSPEND, PsciFunction.CPU_SUSPEND_64,
        PsciFunction.CPU_OFF, PsciFunction.CPU_ON,
        PsciFunction.CPU_ON_64, PsciFunction.AFFINITY_INFO, PsciFunction.AFFINITY_INFO_64,
        PsciFunction.MIGRATE_INFO_TYPE, PsciFunction.SYSTEM_OFF, PsciFunction.SYSTEM_RESET,
        PsciFunction.PSCI_FEATURES,
    }
)

_AFFINITY_MASK_64: Final = 0xFF_00FF_FFFF
_AFFINITY_MASK_32: Final = 0x00FF_FFFF


def is_smc64(function_id: int) -> bool:
    """Whether ``function_id`` uses the 64-bit calling convention (bit 30)."""
    return bool(function_id & 0x4000_0000)


def target_affinity(function_id: int, mpidr: int) -> int | None:
    """The arch id named by a ``CPU_ON`` / ``AFFINITY_INFO`` target argument.

    Returns ``None`` when bits outside the affinity fields are set (the call
    then fails with ``INVALID_PARAMETERS``). 32-bit calls see only ``w1``.
    """
    if not is_smc64(function_id):
        mpidr &= 0xFFFF_FFFF
        mask = _AFFINITY_MASK_32
    else:
        mask = _AFFINITY_MASK_64
    if mpidr & ~mask & ~(1 << 31):
        return None
    return mpidr & mask


def to_register(value: int) -> int:
    """A signed PSCI result as the unsigned 64-bit value placed in ``x0``."""
    return value & 0xFFFF_FFFF_FFFF_FFFF


def from_register(value: int) -> int:
    """The signed result held in a 64-bit ``x0`` value."""
    value &= 0xFFFF_FFFF_FFFF_FFFF
    return value - (1 << 64) if value & (1 << 63) else value
