"""Decoding the few AArch64 instructions the backend emulates itself.

Unicorn runs everything else. What reaches the backend as an UNDEFINED
exception is either the PSCI conduit (``hvc``: HVC is undefined at EL1 when
EL2 is not in use; the backend treats every one as a firmware call, whatever
its immediate) or an access to a system register Unicorn does not implement
(the GICv3 CPU interface, ``ICC_*_EL1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

WFI: Final = 0xD503_207F
"""``wfi``."""
HVC_0: Final = 0xD400_0002
"""``hvc #0``: the PSCI conduit (SMCCC) the FADT announces."""
_HVC_MASK: Final = 0xFFE0_001F
_SYSREG_MASK: Final = 0xFFD0_0000
_SYSREG_MATCH: Final = 0xD510_0000
"""``MSR/MRS (register)``: ``1101010100 L 1 o0 op1 CRn CRm op2 Rt``."""
ZERO_REGISTER: Final = 31
"""``Rt`` = 31 names ``xzr`` in MRS/MSR."""


def hvc_immediate(word: int) -> int | None:
    """The 16-bit immediate of an ``hvc #imm`` instruction, or ``None`` if ``word`` is not one."""
    if word & _HVC_MASK != HVC_0:
        return None
    return (word >> 5) & 0xFFFF


@dataclass(frozen=True)
class SysregAccess:
    """A decoded ``MRS Xt, <reg>`` (``read``) or ``MSR <reg>, Xt``."""

    read: bool
    op0: int
    op1: int
    crn: int
    crm: int
    op2: int
    rt: int

    @property
    def encoding(self) -> tuple[int, int, int, int, int]:
        """``(op0, op1, CRn, CRm, op2)``, the key of :data:`vcpuhp.gic.ICC_SYSREGS`."""
        return (self.op0, self.op1, self.crn, self.crm, self.op2)

    def __str__(self) -> str:
        reg = f"S{self.op0}_{self.op1}_C{self.crn}_C{self.crm}_{self.op2}"
        return f"mrs x{self.rt}, {reg}" if self.read else f"msr {reg}, x{self.rt}"


def decode_sysreg(word: int) -> SysregAccess | None:
    """Decode an MRS / MSR (register) instruction; ``None`` for anything else."""
    if word & _SYSREG_MASK != _SYSREG_MATCH:
        return None
    return SysregAccess(
        read=bool(word >> 21 & 1),
        op0=2 + (word >> 19 & 1),
        op1=word >> 16 & 0x7,
        crn=word >> 12 & 0xF,
        crm=word >> 8 & 0xF,
        op2=word >> 5 & 0x7,
        rt=word & 0x1F,
    )


def encode_sysreg(read: bool, op0: int, op1: int, crn: int, crm: int, op2: int, rt: int) -> int:
    """The instruction word of ``MRS``/``MSR`` (inverse of :func:`decode_sysreg`; for tests)."""
    if op0 not in (2, 3):
        raise ValueError(f"op0 {op0} is not 2 or 3 (MRS/MSR register form)")
    return (_SYSREG_MATCH | (int(read) << 21) | ((op0 - 2) << 19) | (op1 << 16) | (crn << 12)
            | (crm << 8) | (op2 << 5) | rt)


_SYSTEM_MASK: Final = 0xFFF8_0000
_SYSTEM_MATCH: Final = 0xD508_0000
"""``SYS``: ``1101010100 0 01 op1 CRn CRm op2 Rt`` (op0 = 1)."""


@dataclass(frozen=True)
class SystemInstruction:
    """A decoded ``SYS`` instruction (op0 = 1): cache, TLB and address-translation operations."""

    op1: int
    crn: int
    crm: int
    op2: int
    rt: int

    @property
    def encoding(self) -> tuple[int, int, int, int]:
        """``(op1, CRn, CRm, op2)``."""
        return (self.op1, self.crn, self.crm, self.op2)


def decode_system(word: int) -> SystemInstruction | None:
    """Decode a ``SYS`` instruction (``IC``, ``DC``, ``TLBI``, ``AT``); ``None`` otherwise."""
    if word & _SYSTEM_MASK != _SYSTEM_MATCH:
        return None
    return SystemInstruction(op1=word >> 16 & 0x7, crn=word >> 12 & 0xF, crm=word >> 8 & 0xF,
                             op2=word >> 5 & 0x7, rt=word & 0x1F)
