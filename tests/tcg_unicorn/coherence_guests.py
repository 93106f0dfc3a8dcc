"""Two-CPU guests in which one CPU changes what the other has cached (code, a mapping), and
in which both update one counter atomically.

Each engine caches its own translated code and its own TLB, so these only pass
when the maintenance instruction the writer executes reaches the other engine
(``vcpuhp_tcg_unicorn.coherence``). In both, CPU 1 first uses the thing over
and over (so its engine has it cached), having recorded what it saw first at
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
    p(use, a.str64(0, R, SEEN_BEFORE))  # what it saw first: CPU 0 waits for it
    p.label("loop")(use, a.ldr(2, R, GO)).cbz(2, "loop")
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




COUNTER = 0x40
"""Offset of the counter both CPUs add to in :func:`shared_counter_guest`."""
FINISHED = (0x48, 0x50)
"""Offsets of CPU 0's and CPU 1's "done" flag."""
LDXR_X2_X1 = 0xC85F7C22
STXR_W3_X2_X1 = 0xC8037C22
LDADD_X4_X2_X1 = 0xF8240022
"""``ldadd x4, x2, [x1]`` (LSE: the ``max`` CPU model)."""


def shared_counter_guest(adds: int, *, lse: bool) -> a.Program:
    """CPU 0 and CPU 1 each add 1 to one counter ``adds`` times, atomically (``ldadd``, or an
    ``ldxr``/``stxr`` loop), then set their "done" flag: the counter must end at 2 * adds."""
    p = a.Program(BASE)
    p(a.mov64(R, RESULTS))
    p(a.mov64(0, CPU_ON_64), a.movz(1, 1), a.movz(3, 0)).mov_label(2, "cpu1")(a.hvc(0))
    for cpu in (0, 1):
        if cpu:
            p.label("cpu1")(a.mov64(R, RESULTS))
        p(a.mov64(6, adds), a.mov64(1, RESULTS + COUNTER), a.movz(4, 1))
        p.label(f"add{cpu}")
        if lse:
            p(LDADD_X4_X2_X1)
        else:
            p.label(f"retry{cpu}")(LDXR_X2_X1, a.add_imm(2, 2, 1), STXR_W3_X2_X1)
            p.cbnz(3, f"retry{cpu}")
        p(a.sub_imm(6, 6, 1)).cbnz(6, f"add{cpu}")
        p(a.movz(5, 1), a.str64(5, R, FINISHED[cpu])).label(f"idle{cpu}")(a.WFI).b(f"idle{cpu}")
    return p


__all__ = ["COUNTER", "FINISHED", "GO", "NEW_RESULT", "NEW_VALUE", "OLD_RESULT", "OLD_VALUE",
           "REMAPPED_VA", "SEEN_AFTER", "SEEN_BEFORE", "code_patch_guest", "remap_guest",
           "shared_counter_guest"]
