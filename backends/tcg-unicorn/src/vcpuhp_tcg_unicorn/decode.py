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


def hvc_immediate(word: int) -> int | None:
    """The 16-bit immediate of an ``hvc #imm`` instruction, or ``None`` if ``word`` is not one."""
    if word & _HVC_MASK != HVC_0:
        return None
    return (word >> 5) & 0xFFFF


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
