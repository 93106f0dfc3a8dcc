"""Tiny hand-assembled guests for the tcg-unicorn tests (raw images at KERNEL_LOAD_ADDR).

Each program keeps its results in the scratch page at :data:`RESULTS` (the
bundled guest's status page; a raw test image does not use it otherwise).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

from a64asm import (
    COND_LO,
    ERET,
    ICC_EOIR1_EL1,
    ICC_IAR1_EL1,
    ICC_IGRPEN1_EL1,
    ICC_PMR_EL1,
    ICC_SGI1R_EL1,
    ISB,
    SMC_0,
    UDF,
    VBAR_EL1,
    WFI,
    Program,
    add_imm,
    add_reg,
    cmp_reg,
    hvc,
    ldr,
    mov64,
    movz,
    mrs,
    msr,
    msr_daifclr,
    str32,
    str64,
    strb,
    sub_imm,
    sub_reg,
)

from vcpuhp import memmap

BASE = memmap.KERNEL_LOAD_ADDR
RESULTS = memmap.GUEST_STATUS_ADDR
DONE = 0x400
"""Offset of the word a program sets to :data:`DONE_MAGIC` when it finished its script."""
COUNTER = 0x408
"""Offset of the boot CPU's loop counter (it keeps running after the script)."""
IRQ_LAST = 0x418
IRQ_COUNT = 0x420
FATAL = 0x410
DONE_MAGIC = 0xD0E
CPU_ON_64 = 0xC4000003
R = 9
"""x9 holds RESULTS in every program."""


def _prologue(p: Program) -> None:
    p(mov64(R, RESULTS))


def _count_forever(p: Program) -> None:
    p(movz(5, DONE_MAGIC), str64(5, R, DONE), movz(5, 0))
    p.label("count")(add_imm(5, 5, 1), str64(5, R, COUNTER)).b("count")


def elf_image(code: bytes, base: int = BASE) -> bytes:
    """A minimal AArch64 ELF64 executable: one R+W+X PT_LOAD segment at ``base`` (what
    ``qemu-system-aarch64 -kernel`` loads at its address and enters at EL1)."""
    header_size, phdr_size = 64, 56
    offset = header_size + phdr_size
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 183, 1, base, header_size, 0, 0,
                                 header_size, phdr_size, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 7, offset, base, base, len(code), len(code), 0x1000)
    return header + phdr + code


def write_image(tmp: Path, program: Program, name: str = "guest.bin") -> Path:
    """Write ``program`` as a raw image file."""
    path = tmp / name
    path.write_bytes(program.assemble())
    return path


SECONDARY = "secondary"
"""In :func:`psci_calls` arguments: the address of a ``wfi`` loop for started CPUs."""


def psci_calls(calls: Sequence[Sequence[int | str]]) -> Program:
    """Make each PSCI call ``(function id, x1, x2, x3)``; x0 of call i at ``RESULTS + 8*i``."""
    p = Program(BASE)
    _prologue(p)
    for n, call in enumerate(calls):
        for reg, value in enumerate([*call, 0, 0, 0][:4]):
            if isinstance(value, str):
                p.mov_label(reg, value)
            else:
                p(mov64(reg, value))
        p(hvc(0), str64(0, R, 8 * n))
    _count_forever(p)
    p.label("secondary")(WFI).b("secondary")
    return p


def mmio_writes(writes: Sequence[tuple[int, int, int]]) -> Program:
    """Write ``(address, size, value)`` in order (sizes 1 and 4), then count forever."""
    p = Program(BASE)
    _prologue(p)
    for addr, size, value in writes:
        p(mov64(1, addr), mov64(2, value))
        p(strb(2, 1) if size == 1 else str32(2, 1))
    _count_forever(p)
    return p


FAULTS = {
    "undefined": [UDF],
    "unmapped": [*mov64(1, 0x1000), ldr(2, 1)],
    "smc": [SMC_0],
    "unknown sysreg": [mrs(0, 3, 1, 15, 15, 7)],
}


def secondary_fault(kind: str, cpu: int = 1) -> Program:
    """The boot CPU starts CPU ``cpu`` at an instruction that faults, then counts forever."""
    p = Program(BASE)
    _prologue(p)
    p(mov64(0, CPU_ON_64), mov64(1, cpu), movz(3, 0)).mov_label(2, "fault")
    p(hvc(0), str64(0, R, 0))
    _count_forever(p)
    p.label("fault")(FAULTS[kind]).label("park").b("park")
    return p


GICD_CTLR_ARE_G1 = 0x12


def _irq_vectors(p: Program) -> None:
    """The vector table at label ``vectors``: an IRQ is acknowledged, counted
    (``IRQ_COUNT``, ``IRQ_LAST``) and completed; any other vector notes itself in
    ``FATAL`` and loops."""
    p.align(2048).label("vectors")
    for vector in range(16):
        if vector == 5:  # current EL, SP_ELx, IRQ
            p.b("irq")
        else:
            p(movz(12, 0x100 + vector), str64(12, R, FATAL)).label(f"v{vector}").b(f"v{vector}")
        p.align(0x80)
    p.label("irq")(mrs(10, *ICC_IAR1_EL1), str64(10, R, IRQ_LAST), ldr(11, R, IRQ_COUNT))
    p(add_imm(11, 11, 1), str64(11, R, IRQ_COUNT), msr(*ICC_EOIR1_EL1, 10), ERET)


def irq_guest(spi: int, *, masked_spins: int = 0, idle: str = "busy") -> Program:
    """Take SPI ``spi`` on the boot CPU: count handled IRQs and remember the last INTID.

    The program enables the SPI at the distributor and its CPU interface,
    spins ``masked_spins`` iterations with IRQs still masked, unmasks, then
    either counts in a tight loop (``idle="busy"``) or sleeps in ``wfi``.
    """
    intid = memmap.spi_intid(spi)
    word, bit = 4 * (intid // 32), 1 << (intid % 32)
    p = Program(BASE)
    _prologue(p)
    p.mov_label(2, "vectors")(msr(*VBAR_EL1, 2), ISB)
    p(mov64(1, memmap.GICD.base), movz(3, GICD_CTLR_ARE_G1), str32(3, 1, 0))
    p(mov64(3, bit), str32(3, 1, 0x080 + word), str32(3, 1, 0x100 + word))
    p(mov64(1, memmap.GICD.base + 0x400 + intid), movz(3, 0x80), strb(3, 1))
    p(movz(3, 0xF0), msr(*ICC_PMR_EL1, 3), movz(3, 1), msr(*ICC_IGRPEN1_EL1, 3), ISB)
    p(movz(3, 1), str64(3, R, DONE))
    if masked_spins:
        p(mov64(6, masked_spins)).label("spin")(sub_imm(6, 6, 1)).cbnz(6, "spin")
    p(msr_daifclr(2), movz(5, 0))
    if idle == "busy":
        p.label("main")(add_imm(5, 5, 1), str64(5, R, COUNTER)).b("main")
    else:
        p.label("main")(WFI).b("main")
    _irq_vectors(p)
    return p


SGI_TAKEN = 0x500
"""``IRQ_COUNT`` as read right after each ``msr ICC_SGI1R_EL1`` of :func:`sgi_to_self_guest`."""


def sgi_to_self_guest(sgis: int, sgi: int = 1) -> Program:
    """The boot CPU enables SGI ``sgi`` at its redistributor, unmasks IRQs and sends it to
    itself ``sgis`` times, noting the handled count right after each ``ICC_SGI1R_EL1``
    write; then counts forever (``DONE`` = ``DONE_MAGIC`` once the SGIs were sent)."""
    sgi_frame = memmap.GICR_REGION0.base + memmap.GICR_FRAME_SIZE  # CPU 0's SGI_base
    p = Program(BASE)
    _prologue(p)
    p.mov_label(2, "vectors")(msr(*VBAR_EL1, 2), ISB)
    p(mov64(1, memmap.GICD.base), movz(3, GICD_CTLR_ARE_G1), str32(3, 1, 0))
    p(mov64(1, sgi_frame), mov64(3, 1 << sgi), str32(3, 1, 0x080), str32(3, 1, 0x100))
    p(mov64(1, sgi_frame + 0x400 + sgi), movz(3, 0x80), strb(3, 1))
    p(movz(3, 0xF0), msr(*ICC_PMR_EL1, 3), movz(3, 1), msr(*ICC_IGRPEN1_EL1, 3), ISB)
    p(msr_daifclr(2))
    for n in range(sgis):  # target list: CPU 0 (Aff0 = 0); INTID in bits 27:24
        p(mov64(3, sgi << 24 | 1), msr(*ICC_SGI1R_EL1, 3), ldr(4, R, IRQ_COUNT))
        p(str64(4, R, SGI_TAKEN + 8 * n))
    _count_forever(p)
    _irq_vectors(p)
    return p


CNTVCT_EL0 = (3, 3, 14, 0, 2)
CNTV_CVAL_EL0 = (3, 3, 14, 3, 2)
CNTV_CTL_EL0 = (3, 3, 14, 3, 1)
CNTFRQ_EL0 = (3, 3, 14, 0, 0)
TIMER_LATE = 0x100
"""Offset of the timer guest's records: wake n at TIMER_LATE + 8 n (a u64 of counter ticks)."""
TIMER_FREQUENCY = 0x80
"""Offset of the CNTFRQ_EL0 value the timer guest read."""
TIMER_CTL = 0x88
"""Offset of CNTV_CTL_EL0 as the timer guest read it right after its last wake."""
MAX_TIMER_WAKES = 96
"""How many records fit between TIMER_LATE and DONE."""


def timer_guest(wakes: int, delay_ticks: int = 62_500 * 2) -> Program:
    """Arm the virtual timer ``delay_ticks`` ahead (2 ms at 62.5 MHz), sleep in wfi (IRQs
    masked), record how late it woke; ``wakes`` times, then set DONE.

    Record n (at RESULTS + TIMER_LATE + 8 n) is CNTVCT at the wake minus CVAL.
    """
    if not 0 < wakes <= MAX_TIMER_WAKES:
        raise ValueError(f"{wakes} wakes: 1-{MAX_TIMER_WAKES} fit in the results page")
    rd = memmap.GICR_REGION0.base  # CPU 0's redistributor; SGI_base is the second frame
    p = Program(BASE)
    p(mov64(R, RESULTS), mov64(1, rd + 0x10000))
    p(mov64(3, 1 << 27), str32(3, 1, 0x080), str32(3, 1, 0x100))  # group 1, enable
    p(movz(3, 0xF0), msr(*ICC_PMR_EL1, 3), movz(3, 1), msr(*ICC_IGRPEN1_EL1, 3))
    p(mov64(2, memmap.GICD.base), movz(3, GICD_CTLR_ARE_G1), str32(3, 2, 0))
    p(mrs(4, *CNTFRQ_EL0), str64(4, R, TIMER_FREQUENCY), mov64(8, RESULTS + TIMER_LATE))
    p(movz(7, wakes))
    p.label("again")(mrs(4, *CNTVCT_EL0), mov64(5, delay_ticks), add_reg(5, 4, 5))
    p(msr(*CNTV_CVAL_EL0, 5), movz(6, 1), msr(*CNTV_CTL_EL0, 6), ISB)
    p.label("sleep")(WFI, mrs(10, *CNTV_CTL_EL0), str64(10, R, TIMER_CTL))
    p(mrs(4, *CNTVCT_EL0), cmp_reg(4, 5)).b_cond(COND_LO, "sleep")
    p(sub_reg(4, 4, 5), str64(4, 8), add_imm(8, 8, 8))
    p(mrs(10, *ICC_IAR1_EL1), msr(*ICC_EOIR1_EL1, 10))
    p(movz(6, 0), msr(*CNTV_CTL_EL0, 6), sub_imm(7, 7, 1)).cbnz(7, "again")
    p(movz(5, DONE_MAGIC), str64(5, R, DONE)).label("idle")(WFI).b("idle")
    return p
