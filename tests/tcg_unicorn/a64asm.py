"""A tiny AArch64 assembler for test guests: instruction words built in Python.

Only what the test programs use. ``test_unicorn_a64asm.py`` checks each
encoding against GNU as when ``aarch64-linux-gnu-as`` is installed.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

NOP = 0xD503201F
WFI = 0xD503207F
ISB = 0xD5033FDF
ERET = 0xD69F03E0
UDF = 0x00000000
SMC_0 = 0xD4000003


def hvc(imm: int = 0) -> int:
    """``hvc #imm``."""
    return 0xD4000002 | (imm & 0xFFFF) << 5


def movz(rd: int, imm16: int, shift: int = 0) -> int:
    """``movz xd, #imm16, lsl #shift``."""
    return 0xD2800000 | (shift // 16) << 21 | (imm16 & 0xFFFF) << 5 | rd


def movk(rd: int, imm16: int, shift: int = 0) -> int:
    """``movk xd, #imm16, lsl #shift``."""
    return 0xF2800000 | (shift // 16) << 21 | (imm16 & 0xFFFF) << 5 | rd


def mov64(rd: int, value: int) -> list[int]:
    """Load any 64-bit constant (movz + movk)."""
    value &= (1 << 64) - 1
    words = [movz(rd, value & 0xFFFF)]
    for shift in (16, 32, 48):
        part = (value >> shift) & 0xFFFF
        if part:
            words.append(movk(rd, part, shift))
    return words


def add_imm(rd: int, rn: int, imm12: int) -> int:
    """``add xd, xn, #imm12``."""
    return 0x91000000 | (imm12 & 0xFFF) << 10 | rn << 5 | rd


def sub_imm(rd: int, rn: int, imm12: int) -> int:
    """``sub xd, xn, #imm12``."""
    return 0xD1000000 | (imm12 & 0xFFF) << 10 | rn << 5 | rd


def subs_imm(rd: int, rn: int, imm12: int) -> int:
    """``subs xd, xn, #imm12``."""
    return 0xF1000000 | (imm12 & 0xFFF) << 10 | rn << 5 | rd


def movz_w(rd: int, imm16: int) -> int:
    """``movz wd, #imm16``."""
    return 0x52800000 | (imm16 & 0xFFFF) << 5 | rd


def add_reg(rd: int, rn: int, rm: int) -> int:
    """``add xd, xn, xm``."""
    return 0x8B000000 | rm << 16 | rn << 5 | rd


def sub_reg(rd: int, rn: int, rm: int) -> int:
    """``sub xd, xn, xm``."""
    return 0xCB000000 | rm << 16 | rn << 5 | rd


def cmp_reg(rn: int, rm: int) -> int:
    """``cmp xn, xm``."""
    return 0xEB00001F | rm << 16 | rn << 5


def cmp_imm(rn: int, imm12: int) -> int:
    """``cmp xn, #imm12``."""
    return 0xF100001F | (imm12 & 0xFFF) << 10 | rn << 5


def _ldst(base: int, scale: int, rt: int, rn: int, offset: int) -> int:
    if offset % scale or not 0 <= offset // scale < 4096:
        raise ValueError(f"offset {offset} is not a scaled 12-bit offset for size {scale}")
    return base | (offset // scale) << 10 | rn << 5 | rt


def ldr(rt: int, rn: int, offset: int = 0) -> int:
    """``ldr xt, [xn, #offset]``."""
    return _ldst(0xF9400000, 8, rt, rn, offset)


def str64(rt: int, rn: int, offset: int = 0) -> int:
    """``str xt, [xn, #offset]``."""
    return _ldst(0xF9000000, 8, rt, rn, offset)


def ldr32(rt: int, rn: int, offset: int = 0) -> int:
    """``ldr wt, [xn, #offset]``."""
    return _ldst(0xB9400000, 4, rt, rn, offset)


def str32(rt: int, rn: int, offset: int = 0) -> int:
    """``str wt, [xn, #offset]``."""
    return _ldst(0xB9000000, 4, rt, rn, offset)


def strb(rt: int, rn: int, offset: int = 0) -> int:
    """``strb wt, [xn, #offset]``."""
    return _ldst(0x39000000, 1, rt, rn, offset)


def msr_daifclr(imm: int) -> int:
    """``msr daifclr, #imm``."""
    return 0xD50340FF | (imm & 0xF) << 8


def msr_daifset(imm: int) -> int:
    """``msr daifset, #imm``."""
    return 0xD50340DF | (imm & 0xF) << 8


_SYSREG: Final = 0xD510_0000
"""``MSR/MRS (register)``: ``1101010100 L 1 o0 op1 CRn CRm op2 Rt``."""


def encode_sysreg(read: bool, op0: int, op1: int, crn: int, crm: int, op2: int, rt: int) -> int:
    """The instruction word of ``MRS`` (``read``) or ``MSR`` (register)."""
    if op0 not in (2, 3):
        raise ValueError(f"op0 {op0} is not 2 or 3 (MRS/MSR register form)")
    return (_SYSREG | (int(read) << 21) | ((op0 - 2) << 19) | (op1 << 16) | (crn << 12)
            | (crm << 8) | (op2 << 5) | rt)


def mrs(rt: int, op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    """``mrs xt, S<op0>_<op1>_C<crn>_C<crm>_<op2>``."""
    return encode_sysreg(True, op0, op1, crn, crm, op2, rt)


def msr(op0: int, op1: int, crn: int, crm: int, op2: int, rt: int) -> int:
    """``msr S<op0>_<op1>_C<crn>_C<crm>_<op2>, xt``."""
    return encode_sysreg(False, op0, op1, crn, crm, op2, rt)


def blr(rn: int) -> int:
    """``blr xn``."""
    return 0xD63F0000 | rn << 5


def mov_sp(rn: int) -> int:
    """``mov sp, xn``."""
    return 0x9100001F | rn << 5


DSB_SY = 0xD5033F9F
DSB_ISH = 0xD5033B9F
DSB_ISHST = 0xD5033A9F
TLBI_VMALLE1 = 0xD508871F
TLBI_VMALLE1IS = 0xD508831F
RET = 0xD65F03C0


def sys(op1: int, crn: int, crm: int, op2: int, rt: int) -> int:
    """``sys #op1, Cn, Cm, #op2, xt`` (cache, TLB and address-translation maintenance)."""
    return 0xD5080000 | op1 << 16 | crn << 12 | crm << 8 | op2 << 5 | rt


def ic_ivau(rt: int) -> int:
    """``ic ivau, xt``."""
    return sys(3, 7, 5, 1, rt)


def dc_cvau(rt: int) -> int:
    """``dc cvau, xt``."""
    return sys(3, 7, 11, 1, rt)


def dc_zva(rt: int) -> int:
    """``dc zva, xt``."""
    return sys(3, 7, 4, 1, rt)


def tlbi_vae1is(rt: int) -> int:
    """``tlbi vae1is, xt`` (xt: the page number, VA >> 12)."""
    return sys(0, 8, 3, 1, rt)


def tlbi_vae1(rt: int) -> int:
    """``tlbi vae1, xt``: this PE only."""
    return sys(0, 8, 7, 1, rt)


def _imm9(offset: int) -> int:
    if not -256 <= offset < 256:
        raise ValueError(f"offset {offset} does not fit a signed 9-bit immediate")
    return (offset & 0x1FF) << 12


def ldtr(rt: int, rn: int, offset: int = 0) -> int:
    """``ldtr xt, [xn, #offset]``: an unprivileged load (EL0's permissions at EL1)."""
    return 0xF8400800 | _imm9(offset) | rn << 5 | rt


def sttr(rt: int, rn: int, offset: int = 0) -> int:
    """``sttr xt, [xn, #offset]``: an unprivileged store."""
    return 0xF8000800 | _imm9(offset) | rn << 5 | rt


def ldur(rt: int, rn: int, offset: int) -> int:
    """``ldur xt, [xn, #offset]`` (unscaled, signed offset)."""
    return 0xF8400000 | _imm9(offset) | rn << 5 | rt


def str_post(rt: int, rn: int, offset: int) -> int:
    """``str xt, [xn], #offset`` (post-index)."""
    return 0xF8000400 | _imm9(offset) | rn << 5 | rt


def ldp_pre(rt: int, rt2: int, rn: int, offset: int) -> int:
    """``ldp xt, xt2, [xn, #offset]!`` (pre-index; ``offset`` a multiple of 8)."""
    return 0xA9C00000 | ((offset // 8) & 0x7F) << 15 | rt2 << 10 | rn << 5 | rt


def ldr_lsl3(rt: int, rn: int, rm: int) -> int:
    """``ldr xt, [xn, xm, lsl #3]`` (register offset)."""
    return 0xF8607800 | rm << 16 | rn << 5 | rt

VBAR_EL1 = (3, 0, 12, 0, 0)
MPIDR_EL1 = (3, 0, 0, 0, 5)
SCTLR_EL1 = (3, 0, 1, 0, 0)
TCR_EL1 = (3, 0, 2, 0, 2)
TTBR0_EL1 = (3, 0, 2, 0, 0)
MAIR_EL1 = (3, 0, 10, 2, 0)
ESR_EL1 = (3, 0, 5, 2, 0)
ELR_EL1 = (3, 0, 4, 0, 1)
FAR_EL1 = (3, 0, 6, 0, 0)
SPSR_EL1 = (3, 0, 4, 0, 0)
ICC_PMR_EL1 = (3, 0, 4, 6, 0)
ICC_IAR1_EL1 = (3, 0, 12, 12, 0)
ICC_EOIR1_EL1 = (3, 0, 12, 12, 1)
ICC_IGRPEN1_EL1 = (3, 0, 12, 12, 7)
ICC_SGI1R_EL1 = (3, 0, 12, 11, 5)
COND_EQ, COND_NE, COND_LO = 0x0, 0x1, 0x3


@dataclass
class Program:
    """Instruction words with labels; branches are resolved by :meth:`assemble`."""

    base: int
    words: list[int | Callable[[int], int]] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)

    def __call__(self, *items: int | list[int]) -> Program:
        """Append instruction words (or lists of them)."""
        for item in items:
            self.words.extend(item if isinstance(item, list) else [item])
        return self

    def label(self, name: str) -> Program:
        """Name the next instruction's address."""
        self.labels[name] = self.base + 4 * len(self.words)
        return self

    def address(self, name: str) -> int:
        """The address of label ``name``."""
        return self.labels[name]

    def _branch(self, name: str, encode: Callable[[int], int]) -> Program:
        here = self.base + 4 * len(self.words)
        self.words.append(lambda _: encode((self.labels[name] - here) // 4))
        return self

    def mov_label(self, rd: int, name: str) -> Program:
        """Load the address of label ``name`` into ``xd`` (always 4 instructions)."""
        for shift in (0, 16, 32, 48):
            first = shift == 0
            self.words.append(
                lambda _, s=shift, f=first: (movz if f else movk)(rd, self.labels[name] >> s, s)
            )
        return self

    def b(self, name: str) -> Program:
        """``b label``."""
        return self._branch(name, lambda off: 0x14000000 | (off & 0x3FFFFFF))

    def b_cond(self, cond: int, name: str) -> Program:
        """``b.<cond> label``."""
        return self._branch(name, lambda off: 0x54000000 | (off & 0x7FFFF) << 5 | cond)

    def cbnz(self, rt: int, name: str) -> Program:
        """``cbnz xt, label``."""
        return self._branch(name, lambda off: 0xB5000000 | (off & 0x7FFFF) << 5 | rt)

    def cbz(self, rt: int, name: str) -> Program:
        """``cbz xt, label``."""
        return self._branch(name, lambda off: 0xB4000000 | (off & 0x7FFFF) << 5 | rt)

    def quad(self, value: int | Callable[[Program], int]) -> Program:
        """A 64-bit little-endian data word (a callable is given the program, to use labels)."""
        self.words.append(lambda _: (value(self) if callable(value) else value) & 0xFFFF_FFFF)
        self.words.append(lambda _: (value(self) if callable(value) else value) >> 32)
        return self

    def pad_to(self, address: int) -> Program:
        """Pad with ``nop`` up to ``address`` (which must not be behind)."""
        here = self.base + 4 * len(self.words)
        if here > address:
            raise ValueError(f"the program is already at {here:#x}, past {address:#x}")
        self.words.extend([NOP] * ((address - here) // 4))
        return self

    def align(self, boundary: int) -> Program:
        """Pad with ``nop`` to an address multiple of ``boundary``."""
        while (self.base + 4 * len(self.words)) % boundary:
            self.words.append(NOP)
        return self

    def assemble(self) -> bytes:
        """The image bytes."""
        return b"".join(
            struct.pack("<I", w(0) if callable(w) else w) for w in self.words
        )
