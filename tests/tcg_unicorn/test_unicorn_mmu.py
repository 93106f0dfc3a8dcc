"""The software stage-1 walk over synthetic page tables (no engine): what fault, at which level.

The expected fault status codes follow the Arm ARM (translation 0b0001LL, access
flag 0b0010LL, permission 0b0011LL with LL the level); the same tables drive
the MMU guest, whose faults ``test_unicorn_vs_qemu.py`` checks against QEMU.
"""

from __future__ import annotations

import pytest
from unicorn_testlib import require_unicorn

require_unicorn()

from exception_guests import (  # noqa: E402
    BASE,
    EL0_CODE_PAGE,
    L1_TABLE,
    NO_ACCESS_FLAG_PAGE,
    PRIVILEGED_PAGE,
    READ_ONLY_PAGE,
    SCTLR_MMU_ON,
    TCR,
    UNBACKED_WINDOW,
    UNBACKED_WINDOW_PA,
    UNMAPPED_L1,
    UNMAPPED_L2,
    UNMAPPED_PAGE,
    page_tables,
)

from vcpuhp_tcg_unicorn.mmu import Regime, Translation, walk  # noqa: E402

TRANSLATION, ACCESS_FLAG, PERMISSION = 0x04, 0x08, 0x0C
SCTLR_WXN = 1 << 19
TCR_EPD0, TCR_TBI0 = 1 << 7, 1 << 37


def memory(tables: dict[int, list[int]]) -> object:
    """``read_u64`` over tables placed at their addresses (``None`` elsewhere)."""
    def read_u64(address: int) -> int | None:
        base = address & ~0xFFF
        if base not in tables or address % 8:
            return None
        return tables[base][(address - base) // 8]
    return read_u64


def translate(va: int, *, el0: bool = False, write: bool = False, execute: bool = False,
              sctlr: int = SCTLR_MMU_ON, tcr: int = TCR, ttbr0: int = L1_TABLE,
              ttbr1: int = 0, pan: bool = False,
              tables: dict[int, list[int]] | None = None) -> Translation | None:
    regime = Regime(sctlr=sctlr, tcr=tcr, ttbr0=ttbr0, ttbr1=ttbr1, pan=pan)
    read_u64 = memory(page_tables() if tables is None else tables)
    return walk(regime, va, el0=el0, write=write, execute=execute,
                read_u64=read_u64)  # type: ignore[arg-type]


def ok(address: int) -> Translation:
    return Translation(address, None)


def fault(kind: int, level: int) -> Translation:
    return Translation(0, kind + level)


@pytest.mark.parametrize(("va", "access", "expected"), [
    (BASE + 0x10, {}, ok(BASE + 0x10)),                                   # a 4 KiB page
    (0x4018_0008, {}, ok(0x4018_0008)),                                   # a 2 MiB block
    (0x0900_0000, {}, ok(0x0900_0000)),                                   # a 1 GiB block
    (UNBACKED_WINDOW + 0x123, {}, ok(UNBACKED_WINDOW_PA + 0x123)),        # VA != PA
    (UNMAPPED_L1, {}, fault(TRANSLATION, 1)),
    (UNMAPPED_L2 + 8, {}, fault(TRANSLATION, 2)),
    (UNMAPPED_PAGE, {}, fault(TRANSLATION, 3)),
    (NO_ACCESS_FLAG_PAGE, {}, fault(ACCESS_FLAG, 3)),
    (READ_ONLY_PAGE, {}, ok(READ_ONLY_PAGE)),
    (READ_ONLY_PAGE, {"write": True}, fault(PERMISSION, 3)),
    (PRIVILEGED_PAGE, {"write": True}, ok(PRIVILEGED_PAGE)),
    (PRIVILEGED_PAGE, {"el0": True}, fault(PERMISSION, 3)),               # AP[1] = 0
    (EL0_CODE_PAGE, {"el0": True, "execute": True}, ok(EL0_CODE_PAGE)),
    (EL0_CODE_PAGE, {"el0": True, "write": True}, fault(PERMISSION, 3)),  # AP[2] = 1
    (EL0_CODE_PAGE, {"execute": True}, fault(PERMISSION, 3)),             # PXN
    (BASE, {"execute": True}, ok(BASE)),                                  # UXN only
    (BASE, {"el0": True, "execute": True}, fault(PERMISSION, 3)),
    (0x4018_0000, {"execute": True}, fault(PERMISSION, 2)),               # PXN block
    (1 << 39, {}, fault(TRANSLATION, 0)),                                 # beyond T0SZ
])
def test_walk_classifies_like_the_architecture(va: int, access: dict[str, bool],
                                                expected: Translation) -> None:
    assert translate(va, **access) == expected  # type: ignore[arg-type]


def test_the_mmu_off_maps_flat() -> None:
    assert translate(0x1234_5678, sctlr=0) == ok(0x1234_5678)
    assert translate(UNMAPPED_PAGE, sctlr=0, el0=True, write=True) == ok(UNMAPPED_PAGE)


def test_pan_stops_el1_from_touching_el0_pages() -> None:
    assert translate(EL0_CODE_PAGE) == ok(EL0_CODE_PAGE)
    assert translate(EL0_CODE_PAGE, pan=True) == fault(PERMISSION, 3)
    assert translate(PRIVILEGED_PAGE, pan=True) == ok(PRIVILEGED_PAGE)


def test_wxn_makes_writable_pages_execute_never() -> None:
    assert translate(BASE, execute=True, sctlr=SCTLR_MMU_ON | SCTLR_WXN) == fault(PERMISSION, 3)
    assert translate(READ_ONLY_PAGE, execute=True, sctlr=SCTLR_MMU_ON | SCTLR_WXN) == \
        fault(PERMISSION, 3)  # PXN anyway


def test_epd0_and_the_top_byte() -> None:
    assert translate(BASE, tcr=TCR | TCR_EPD0) == fault(TRANSLATION, 0)
    tagged = 0x5A << 56 | BASE
    assert translate(tagged) == fault(TRANSLATION, 0)
    assert translate(tagged, tcr=TCR | TCR_TBI0) == ok(BASE)
    assert translate(tagged, tcr=TCR | TCR_TBI0, execute=True) == fault(TRANSLATION, 0)


def test_granules_other_than_4k_are_not_modelled() -> None:
    assert translate(BASE, tcr=TCR | 0b10 << 14) is None  # TG0 = 16 KiB


# A 48-bit space (T0SZ 16: four levels) and the upper half (TTBR1), built here.
L0, L1, L2, L3 = 0x10_0000, 0x10_1000, 0x10_2000, 0x10_3000
U1 = 0x10_4000
PAGE_RW = 0b11 | 1 << 10 | 0b01 << 6  # valid page, AF, AP EL0+EL1 read/write
TABLE = 0b11


def four_levels(table_bits: int = 0) -> dict[int, list[int]]:
    tables = {base: [0] * 512 for base in (L0, L1, L2, L3, U1)}
    tables[L0][1] = L1 | TABLE | table_bits      # VA bit 39: L0 index 1
    tables[L1][0] = L2 | TABLE
    tables[L2][0] = L3 | TABLE
    tables[L3][5] = 0x7000_5000 | PAGE_RW
    tables[L1][1] = 0x8000_0000 | 0b01 | 1 << 10  # a 1 GiB block at level 1
    tables[U1][511] = 0xC000_0000 | 0b01 | 1 << 10  # TTBR1: the top gigabyte
    return tables


T0SZ_48 = 16
T1SZ_39_4K = 25 << 16 | 0b10 << 30


def test_a_four_level_walk_and_its_faults() -> None:
    tables = four_levels()
    base = 1 << 39
    kw = {"tcr": T0SZ_48 | 1 << 23, "ttbr0": L0, "tables": tables}
    assert translate(base + 0x5123, **kw) == ok(0x7000_5123)  # type: ignore[arg-type]
    assert translate(base + 0x6000, **kw) == fault(TRANSLATION, 3)  # type: ignore[arg-type]
    assert translate(base + (1 << 30) + 0x42, **kw) == ok(0x8000_0042)  # type: ignore[arg-type]
    assert translate(0x1000, **kw) == fault(TRANSLATION, 0)  # type: ignore[arg-type]
    assert translate(base + (2 << 30), **kw) == fault(TRANSLATION, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(("table_bits", "access", "expected"), [
    (1 << 61, {"el0": True}, fault(PERMISSION, 3)),                  # APTable[0]: no EL0
    (1 << 62, {"write": True}, fault(PERMISSION, 3)),                # APTable[1]: read-only
    (1 << 60, {"el0": True, "execute": True}, fault(PERMISSION, 3)),  # UXNTable
    (1 << 59, {"execute": True}, fault(PERMISSION, 3)),              # PXNTable
    (1 << 59, {"el0": True, "execute": True}, ok(0x7000_5000)),
])
def test_hierarchical_table_attributes_restrict_the_page(
    table_bits: int, access: dict[str, bool], expected: Translation
) -> None:
    tables = four_levels(table_bits)
    got = translate((1 << 39) + 0x5000, tcr=T0SZ_48 | 1 << 23, ttbr0=L0, tables=tables,
                    **access)
    assert got == expected


def test_the_upper_half_walks_from_ttbr1() -> None:
    tables = four_levels()
    tcr = 25 | T1SZ_39_4K  # both halves 39 bits, 4 KiB granule
    top_gigabyte = (1 << 64) - (1 << 30)
    assert translate(top_gigabyte + 0x10, tcr=tcr, ttbr1=U1, tables=tables) == \
        ok(0xC000_0010)
    assert translate(top_gigabyte - (1 << 30), tcr=tcr, ttbr1=U1, tables=tables) == \
        fault(TRANSLATION, 1)
    assert translate(1 << 60, tcr=tcr, ttbr1=U1, tables=tables) == fault(TRANSLATION, 0)
