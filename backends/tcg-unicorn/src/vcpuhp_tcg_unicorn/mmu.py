"""The guest's stage-1 EL1&0 translation, walked in software to classify an MMU fault.

Unicorn's own walk raises the abort but keeps the fault status to itself;
this walk reproduces the decision (translation, access flag or permission
fault, and at which level) from the registers and the tables in guest RAM.
It covers the 4 KiB granule (what Linux and most guests use); for 16 and
64 KiB granules :func:`walk` returns ``None`` and the caller reports a level-0
translation fault.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from vcpuhp_tcg_unicorn.syndrome import FSC_ACCESS_FLAG, FSC_PERMISSION, FSC_TRANSLATION

ReadU64 = Callable[[int], int | None]
"""Reads a little-endian u64 at a guest-physical address; ``None`` when unbacked."""

_OA_MASK: Final = 0x0000_FFFF_FFFF_F000
_SCTLR_M: Final = 1 << 0
_SCTLR_WXN: Final = 1 << 19
PSTATE_PAN: Final = 1 << 22
PSTATE_UAO: Final = 1 << 23


@dataclass(frozen=True)
class Regime:
    """The registers that govern a stage-1 EL1&0 walk."""

    sctlr: int
    tcr: int
    ttbr0: int
    ttbr1: int
    pan: bool = False

    @property
    def mmu_enabled(self) -> bool:
        """``SCTLR_EL1.M``."""
        return bool(self.sctlr & _SCTLR_M)


@dataclass(frozen=True)
class Translation:
    """A walk's outcome: ``fsc`` is ``None`` on success (then ``address`` is the PA)."""

    address: int
    fsc: int | None


def _fault(kind: int, level: int) -> Translation:
    return Translation(0, kind + level)


def walk(regime: Regime, va: int, *, el0: bool, write: bool, execute: bool,
         read_u64: ReadU64) -> Translation | None:
    """Translate ``va`` for the access described; ``None`` if the granule is not 4 KiB."""
    if not regime.mmu_enabled:
        return Translation(va, None)
    tcr = regime.tcr
    upper = bool(va >> 55 & 1)
    tbi = bool(tcr >> (38 if upper else 37) & 1) and not execute
    top = (va >> 56) if not tbi else (0xFF if upper else 0)
    if upper:
        tsz, epd, tg, base = (tcr >> 16) & 0x3F, tcr >> 23 & 1, (tcr >> 30) & 3, regime.ttbr1
        granule_4k = tg == 2
    else:
        tsz, epd, tg, base = tcr & 0x3F, tcr >> 7 & 1, (tcr >> 14) & 3, regime.ttbr0
        granule_4k = tg == 0
    if not granule_4k:
        return None
    size = 64 - max(tsz, 16)
    high = (va >> size) & ((1 << (56 - size)) - 1) if size < 56 else 0
    want_high = ((1 << (56 - size)) - 1) if upper else 0
    if epd or high != want_high or top != (0xFF if upper else 0):
        return _fault(FSC_TRANSLATION, 0)
    level = 4 - (size - 12 + 8) // 9
    table = base & _OA_MASK & ~0xFFF if level >= 0 else 0
    ap_table, uxn_table, pxn_table = 0, False, False
    while True:
        shift = 12 + 9 * (3 - level)
        bits = min(9, size - shift)
        index = (va >> shift) & ((1 << bits) - 1)
        descriptor = read_u64(table + 8 * index)
        if descriptor is None or not descriptor & 1:
            return _fault(FSC_TRANSLATION, level)
        is_table = bool(descriptor & 2)
        if level < 3 and is_table:
            ap_table |= (descriptor >> 61) & 3
            uxn_table |= bool(descriptor >> 60 & 1)
            pxn_table |= bool(descriptor >> 59 & 1)
            table = descriptor & _OA_MASK
            level += 1
            continue
        if (level == 3 and not is_table) or level == 0:
            return _fault(FSC_TRANSLATION, level)
        break
    if not descriptor >> 10 & 1:
        return _fault(FSC_ACCESS_FLAG, level)
    ap = (descriptor >> 6) & 3
    el0_access = bool(ap & 1) and not ap_table & 1
    read_only = bool(ap & 2) or bool(ap_table & 2)
    uxn = bool(descriptor >> 54 & 1) or uxn_table
    pxn = bool(descriptor >> 53 & 1) or pxn_table
    wxn = bool(regime.sctlr & _SCTLR_WXN) and not read_only
    if el0:
        allowed = el0_access and (not write or not read_only)
        if execute:
            allowed = el0_access and not uxn and not wxn
    elif execute:
        allowed = not pxn and not wxn and not (ap & 1 and not read_only)
    else:
        allowed = (not write or not read_only) and not (regime.pan and el0_access)
    if not allowed:
        return _fault(FSC_PERMISSION, level)
    page_mask = (1 << (12 + 9 * (3 - level))) - 1
    return Translation((descriptor & _OA_MASK & ~page_mask) | (va & page_mask), None)


__all__ = ["PSTATE_PAN", "PSTATE_UAO", "ReadU64", "Regime", "Translation", "walk"]
