"""Which address a faulting load or store accessed (for ``FAR_EL1``), decoded with capstone.

Unicorn gives the physical address of an unbacked access and nothing at all
for an MMU fault; the virtual address is the instruction's base register
plus its offset, as the instruction was about to execute (PC and registers
are restored to the faulting instruction).
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

capstone: Any = importlib.import_module("capstone")
"""The capstone binding, seen as ``Any`` (it ships no type information)."""
cs_arm64: Any = importlib.import_module("capstone.arm64")

RegisterByName = Callable[[str], int]
"""Reads a general-purpose register by capstone's name (``x3``, ``w3``, ``sp``)."""

_WRITE_PREFIXES: Final = ("st", "cas", "swp", "ldadd", "ldclr", "ldeor", "ldset", "ldsmax",
                          "ldsmin", "ldumax", "ldumin")
"""Mnemonics that write memory (stores and atomic read-modify-writes)."""
_EXTEND_BITS: Final = {
    cs_arm64.ARM64_EXT_UXTB: (8, False), cs_arm64.ARM64_EXT_UXTH: (16, False),
    cs_arm64.ARM64_EXT_UXTW: (32, False), cs_arm64.ARM64_EXT_UXTX: (64, False),
    cs_arm64.ARM64_EXT_SXTB: (8, True), cs_arm64.ARM64_EXT_SXTH: (16, True),
    cs_arm64.ARM64_EXT_SXTW: (32, True), cs_arm64.ARM64_EXT_SXTX: (64, True),
}
_MASK64: Final = (1 << 64) - 1


@dataclass(frozen=True)
class MemoryAccess:
    """A decoded load or store: the first byte it touches and whether it writes."""

    address: int
    write: bool
    mnemonic: str


@lru_cache(maxsize=1)
def _disassembler() -> Any:
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    md.detail = True
    return md


def _extend(value: int, bits: int, signed: bool) -> int:
    value &= (1 << bits) - 1
    if signed and value >> (bits - 1):
        value -= 1 << bits
    return value


def decode_access(word: int, pc: int, register: RegisterByName) -> MemoryAccess | None:
    """The memory access of instruction ``word`` at ``pc``; ``None`` if it makes none."""
    for insn in _disassembler().disasm(struct.pack("<I", word), pc):
        mnemonic = insn.mnemonic
        write = mnemonic.startswith(_WRITE_PREFIXES)
        literal = None
        for op in insn.operands:
            if op.type == cs_arm64.ARM64_OP_MEM:
                address = register(insn.reg_name(op.mem.base)) if op.mem.base else 0
                if not insn.post_index:
                    address += op.mem.disp
                if op.mem.index:
                    index = register(insn.reg_name(op.mem.index))
                    if op.ext in _EXTEND_BITS:
                        index = _extend(index, *_EXTEND_BITS[op.ext])
                    if op.shift.type == cs_arm64.ARM64_SFT_LSL:
                        index <<= op.shift.value
                    address += index
                return MemoryAccess(address & _MASK64, write, mnemonic)
            if op.type == cs_arm64.ARM64_OP_IMM and mnemonic.startswith(("ldr", "prfm")):
                literal = op.imm
        if literal is not None:
            return MemoryAccess(literal & _MASK64, False, mnemonic)
    return None


def mnemonic(word: int) -> str:
    """``mnemonic operands`` of ``word`` (``.word 0x...`` if capstone has none)."""
    for insn in _disassembler().disasm(struct.pack("<I", word), 0):
        return f"{insn.mnemonic} {insn.op_str}".strip()
    return f".word {word:#010x}"


__all__ = ["MemoryAccess", "RegisterByName", "decode_access", "mnemonic"]
