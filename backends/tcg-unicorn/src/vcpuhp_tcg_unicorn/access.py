"""Which address a faulting load or store accessed (for ``FAR_EL1``), decoded from its encoding.

Unicorn gives the physical address of an unbacked access and nothing at all
for an MMU fault; the virtual address is the instruction's base register
plus its offset, as the instruction was about to execute (PC and registers
are restored to the faulting instruction). The decoder covers the whole A64
"Loads and Stores" encoding group of the Arm ARM (literal, exclusive and
ordered, compare-and-swap, pairs, register with unscaled / pre- / post-index
/ unprivileged / unsigned immediate / register offset, atomics, LDAPR and
the RCpc unscaled forms, LDRAA/LDRAB, SIMD structures) and ``DC ZVA``, the
one system instruction that writes memory. It is written from the encoding
tables rather than taken from a disassembler: capstone 5 rejects valid
encodings here (``ldtr x3, [x3]``, which Linux's ``get_user`` emits, decodes
to nothing), and the exception path must know every access.

For each access it also says whether it writes (stores and atomic
read-modify-writes: Linux grants a write on a write fault only) and whether
it is *unprivileged* (``LDTR``/``STTR``: at EL1 checked with EL0's
permissions, unaffected by ``PSTATE.PAN``), which the software walk needs
to classify the fault as the CPU did.
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

RegisterByName = Callable[[str], int]
"""Reads a general-purpose register by name (``x3``, ``sp``)."""

_MASK64: Final = (1 << 64) - 1
DC_ZVA: Final = 0xD50B_7420
"""``dc zva, x0`` (``Rt`` in bits 4:0)."""
_DC_ZVA_MASK: Final = 0xFFFF_FFE0
_SIMD_STRUCTURES: Final = frozenset({0b0011000, 0b0011001, 0b0011010, 0b0011011})
"""Bits 29:23 of the SIMD load/store multiple and single structure forms."""


@dataclass(frozen=True)
class MemoryAccess:
    """A decoded load or store: the first byte it touches and what kind of access it is."""

    address: int
    write: bool
    form: str
    """The encoding class (``"register (unprivileged)"``, ``"pair"``, ...), for messages."""
    unprivileged: bool = False
    """``LDTR``/``STTR`` family: checked with EL0 permissions when executed at EL1."""


def _bits(word: int, high: int, low: int) -> int:
    return (word >> low) & ((1 << (high - low + 1)) - 1)


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def _base(word: int, register: RegisterByName) -> int:
    rn = _bits(word, 9, 5)
    return register("sp" if rn == 31 else f"x{rn}")


def _index(rm: int, register: RegisterByName) -> int:
    return 0 if rm == 31 else register(f"x{rm}")


def _extended(value: int, option: int) -> int:
    """``ExtendReg`` with the register-offset options (UXTW, LSL/UXTX, SXTW, SXTX)."""
    bits = 32 if option & 0b011 == 0b010 else 64
    value &= (1 << bits) - 1
    return _signed(value, bits) if option & 0b100 else value


def _register_scale(word: int) -> int:
    """log2 of the access size of the single-register forms (``size``; ``opc<1>`` for 128-bit
    SIMD&FP registers)."""
    size = _bits(word, 31, 30)
    if _bits(word, 26, 26) and _bits(word, 23, 23):
        return 4
    return size


def _register_writes(word: int) -> bool:
    """Whether a single-register load/store form stores (``opc``; SIMD&FP: ``opc<0>``)."""
    opc = _bits(word, 23, 22)
    if _bits(word, 26, 26):
        return not opc & 1
    return opc == 0


def _exclusive(word: int, register: RegisterByName) -> MemoryAccess:
    # size 001000 o2 L o1 Rs o0 Rt2 Rn Rt
    o2, load, o1 = _bits(word, 23, 23), _bits(word, 22, 22), _bits(word, 21, 21)
    compare_and_swap = o1 == 1 and (o2 == 1 or _bits(word, 31, 30) < 2)  # CAS, CASP
    form = "compare and swap" if compare_and_swap else "exclusive or ordered"
    return MemoryAccess(_base(word, register), compare_and_swap or not load, form)


def _pair(word: int, register: RegisterByName) -> MemoryAccess:
    # opc 101 V type L imm7 Rt2 Rn Rt
    opc, simd, kind = _bits(word, 31, 30), _bits(word, 26, 26), _bits(word, 24, 23)
    scale = 2 + opc if simd else 2 + (opc >> 1)
    offset = 0 if kind == 0b01 else _signed(_bits(word, 21, 15), 7) << scale  # 01: post-index
    return MemoryAccess((_base(word, register) + offset) & _MASK64,
                        not _bits(word, 22, 22), "pair")


def _register_immediate(word: int, register: RegisterByName) -> MemoryAccess:
    # size 111 V 00 opc 0 imm9 op4 Rn Rt; op4: 00 unscaled, 01 post, 10 unprivileged, 11 pre
    kind = _bits(word, 11, 10)
    offset = 0 if kind == 0b01 else _signed(_bits(word, 20, 12), 9)
    unprivileged = kind == 0b10
    form = "register (unprivileged)" if unprivileged else "register (immediate)"
    return MemoryAccess((_base(word, register) + offset) & _MASK64, _register_writes(word),
                        form, unprivileged)


def _atomic(word: int, register: RegisterByName) -> MemoryAccess:
    # size 111 V 00 A R 1 Rs o3 opc 00 Rn Rt; LDAPR is o3 = 1, opc = 100 (a load)
    load_acquire_rcpc = _bits(word, 15, 15) == 1 and _bits(word, 14, 12) == 0b100
    return MemoryAccess(_base(word, register), not load_acquire_rcpc,
                        "load-acquire RCpc" if load_acquire_rcpc else "atomic")


def _register_offset(word: int, register: RegisterByName) -> MemoryAccess:
    # size 111 V 00 opc 1 Rm option S 10 Rn Rt
    index = _extended(_index(_bits(word, 20, 16), register), _bits(word, 15, 13))
    if _bits(word, 12, 12):
        index <<= _register_scale(word)
    return MemoryAccess((_base(word, register) + index) & _MASK64, _register_writes(word),
                        "register (register offset)")


def _pointer_authenticated(word: int, register: RegisterByName) -> MemoryAccess:
    # 11 111 0 00 M S 1 imm9 W 1 Rn Rt (LDRAA, LDRAB): offset S:imm9, scaled by 8
    offset = _signed((_bits(word, 22, 22) << 9) | _bits(word, 20, 12), 10) << 3
    return MemoryAccess((_base(word, register) + offset) & _MASK64, False,
                        "register (pointer authenticated)")


def _unsigned_immediate(word: int, register: RegisterByName) -> MemoryAccess:
    # size 111 V 01 opc imm12 Rn Rt
    offset = _bits(word, 21, 10) << _register_scale(word)
    return MemoryAccess((_base(word, register) + offset) & _MASK64, _register_writes(word),
                        "register (unsigned immediate)")


def _rcpc_unscaled(word: int, register: RegisterByName) -> MemoryAccess:
    # size 011001 opc 0 imm9 00 Rn Rt (LDAPUR*, STLUR*)
    offset = _signed(_bits(word, 20, 12), 9)
    return MemoryAccess((_base(word, register) + offset) & _MASK64,
                        _bits(word, 23, 22) == 0, "RCpc unscaled")


def decode_access(word: int, pc: int, register: RegisterByName, *,
                  dc_zva_bytes: int = 64) -> MemoryAccess | None:
    """The memory access of instruction ``word`` at ``pc``; ``None`` if it makes none.

    ``dc_zva_bytes``: the ``DC ZVA`` block size (``DCZID_EL0``), to which its address
    is aligned.
    """
    if word & _DC_ZVA_MASK == DC_ZVA:
        address = _index(_bits(word, 4, 0), register) & ~(dc_zva_bytes - 1) & _MASK64
        return MemoryAccess(address, True, "dc zva")
    if _bits(word, 27, 27) != 1 or _bits(word, 25, 25) != 0:
        return None  # not in the Loads and Stores group (op0 = x1x0)
    if _bits(word, 31, 31) == 0 and _bits(word, 29, 23) in _SIMD_STRUCTURES:
        return MemoryAccess(_base(word, register), not _bits(word, 22, 22), "SIMD structures")
    group = _bits(word, 29, 27)
    if group == 0b001 and _bits(word, 26, 24) == 0b000:
        return _exclusive(word, register)
    if group == 0b011:
        if _bits(word, 25, 24) == 0b00:  # opc 011 V 00 imm19 Rt: literal (PC-relative)
            offset = _signed(_bits(word, 23, 5), 19) << 2
            return MemoryAccess((pc + offset) & _MASK64, False, "literal")
        if _bits(word, 26, 24) == 0b001 and not _bits(word, 21, 21) and not _bits(word, 11, 10):
            return _rcpc_unscaled(word, register)
        return None
    if group == 0b101:
        return _pair(word, register)
    if group == 0b111:
        if _bits(word, 24, 24):
            return _unsigned_immediate(word, register)
        if not _bits(word, 21, 21):
            return _register_immediate(word, register)
        kind = _bits(word, 11, 10)
        if kind == 0b00:
            return _atomic(word, register)
        if kind == 0b10:
            return _register_offset(word, register)
        return _pointer_authenticated(word, register)
    return None


capstone: Any = importlib.import_module("capstone")
"""The capstone binding, seen as ``Any`` (it ships no type information); messages only."""


@lru_cache(maxsize=1)
def _disassembler() -> Any:
    return capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)


def mnemonic(word: int) -> str:
    """``mnemonic operands`` of ``word`` (``.word 0x...`` if capstone has none); for messages."""
    for insn in _disassembler().disasm(struct.pack("<I", word), 0):
        return f"{insn.mnemonic} {insn.op_str}".strip()
    return f".word {word:#010x}"


__all__ = ["DC_ZVA", "MemoryAccess", "RegisterByName", "decode_access", "mnemonic"]
