"""Two-CPU guests in which one CPU changes what the other has cached: code or a mapping.

Each engine caches its own translated code and its own TLB, so these only pass
when the maintenance instruction the writer executes reaches the other engine
(``vcpuhp_tcg_unicorn.coherence``). In both, CPU 1 first uses the thing over
and over (so its engine has it cached) and records what it saw at
``RESULTS + SEEN_BEFORE``; CPU 0 waits for that, changes it, executes the
maintenance and ``dsb ish``, then sets ``RESULTS + GO``; CPU 1 leaves its
loop, executes ``isb`` and uses it once more, records what it saw at
``RESULTS + SEEN_AFTER`` and sets ``RESULTS + DONE`` to ``DONE_MAGIC``.
"""

from __future__ import annotations

import a64asm as a
from exception_guests import L3_TABLE, mmu_on, page_tables, place_page_tables
from unicorn_guests import BASE, CPU_ON_64, DONE, DONE_MAGIC, RESULTS

SEEN_BEFORE = 0x10
SEEN_AFTER = 0x18
GO = 0x20
R = 9
OLD_RESULT, NEW_RESULT = 1, 2
"""What the patched function returns before and after CPU 0 rewrites it."""
PAGE = 0x1000
REMAPPED_VA = BASE + 0xC000
"""The page CPU 0 remaps: first onto itself, then onto the next page."""
OLD_VALUE, NEW_VALUE = 0xAAAA, 0xBBBB
"""What CPU 1 reads at :data:`REMAPPED_VA` through the first and the second mapping."""


def _start_cpu1(p: a.Program) -> None:
    p(a.mov64(R, RESULTS))
    p(a.mov64(0, CPU_ON_64), a.movz(1, 1), a.movz(3, 0)).mov_label(2, "cpu1")(a.hvc(0))
    p.label("wait")(a.ldr(2, R, SEEN_BEFORE)).cbz(2, "wait")


def _go_and_idle(p: a.Program) -> None:
    p(a.movz(3, 1), a.str64(3, R, GO)).label("idle")(a.WFI).b("idle")


def _cpu1_loop(p: a.Program, use: list[int]) -> None:
    """``use`` leaves what CPU 1 saw in x0."""
    p.label("loop")(use, a.str64(0, R, SEEN_BEFORE), a.ldr(2, R, GO)).cbz(2, "loop")
    p(a.ISB, use, a.str64(0, R, SEEN_AFTER), a.movz(5, DONE_MAGIC), a.str64(5, R, DONE))
    p.label("park")(a.WFI).b("park")


def code_patch_guest() -> a.Program:
    """CPU 0 rewrites a function CPU 1 keeps calling (``movz x0, #1`` becomes ``#2``), then
    ``dc cvau``, ``dsb ish``, ``ic ivau``, ``dsb ish``: CPU 1 must then run the new code."""
    p = a.Program(BASE)
    _start_cpu1(p)
    p.mov_label(19, "patched")(a.mov64(3, a.movz(0, NEW_RESULT)), a.str32(3, 19))
    p(a.dc_cvau(19), a.DSB_ISH, a.ic_ivau(19), a.DSB_ISH, a.ISB)
    _go_and_idle(p)
    p.label("cpu1")(a.mov64(R, RESULTS)).mov_label(19, "patched")
    _cpu1_loop(p, [a.blr(19)])
    p.align(64).label("patched")(a.movz(0, OLD_RESULT), a.RET)
    return p


def remap_guest() -> a.Program:
    """CPU 1 (MMU on) keeps reading :data:`REMAPPED_VA`; CPU 0 points its level-3 entry at
    the next page, then ``dsb ishst``, ``tlbi vae1is``, ``dsb ish``: CPU 1 must then read
    through the new mapping."""
    index = (REMAPPED_VA - BASE) // PAGE
    descriptor = page_tables()[L3_TABLE][index + 1]  # the next page's, same attributes
    p = a.Program(BASE)
    _start_cpu1(p)
    p(a.mov64(1, L3_TABLE + 8 * index), a.mov64(3, descriptor), a.str64(3, 1))
    p(a.DSB_ISHST, a.mov64(1, REMAPPED_VA >> 12), a.tlbi_vae1is(1), a.DSB_ISH, a.ISB)
    _go_and_idle(p)
    p.label("cpu1")(a.mov64(R, RESULTS))
    mmu_on(p)
    p(a.mov64(6, REMAPPED_VA))
    _cpu1_loop(p, [a.ldr(0, 6)])
    place_page_tables(p)
    p.pad_to(REMAPPED_VA).quad(OLD_VALUE).pad_to(REMAPPED_VA + PAGE).quad(NEW_VALUE)
    return p


__all__ = ["GO", "NEW_RESULT", "NEW_VALUE", "OLD_RESULT", "OLD_VALUE", "REMAPPED_VA",
           "SEEN_AFTER", "SEEN_BEFORE", "code_patch_guest", "remap_guest"]
