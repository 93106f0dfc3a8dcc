"""Synchronous exceptions as the Arm ARM describes them: what ``ESR_EL1`` and ``FAR_EL1`` hold.

Unicorn reports an exception to a hook but does not take it: it keeps the
syndrome QEMU computed in a field it does not expose, and never writes
``ESR_EL1``/``FAR_EL1``. This module computes the same values from the
instruction and the guest's page tables. Each builder returns a
:class:`SyncException`; :meth:`vcpuhp_tcg_unicorn.engine.Engine.take_exception`
enters the vector.

The values follow QEMU's ``-M virt`` without EL2 and EL3 (``target/arm``):
``smc`` is UNDEFINED (EC 0; every ``hvc`` is a firmware call, the PSCI
conduit), and a data or instruction abort taken to EL1 carries no
instruction syndrome (ISV 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

EC_UNKNOWN: Final = 0x00
EC_SVC64: Final = 0x15
EC_IABT_LOWER: Final = 0x20
EC_IABT_SAME: Final = 0x21
EC_DABT_LOWER: Final = 0x24
EC_DABT_SAME: Final = 0x25
EC_BRK64: Final = 0x3C
ESR_IL: Final = 1 << 25
"""Instruction length: 32-bit (every A64 instruction)."""
ESR_WNR: Final = 1 << 6
"""Data abort: the access was a write."""
FSC_SYNC_EXTERNAL: Final = 0x10
"""Synchronous external abort, not on a translation table walk."""
FSC_TRANSLATION: Final = 0x04
FSC_ACCESS_FLAG: Final = 0x08
FSC_PERMISSION: Final = 0x0C

VECTOR_SYNC: Final = 0x000
VECTOR_IRQ: Final = 0x080
VECTOR_CURRENT_SP0: Final = 0x000
VECTOR_CURRENT_SPX: Final = 0x200
VECTOR_LOWER_A64: Final = 0x400


def esr(ec: int, iss: int = 0) -> int:
    """``ESR_ELx`` for exception class ``ec`` and syndrome ``iss`` (IL = 1)."""
    return (ec << 26) | ESR_IL | (iss & 0x1FF_FFFF)


def vector_base_offset(pstate: int) -> int:
    """The vector group for an exception taken to EL1 from ``pstate``'s EL and SP."""
    el = (pstate >> 2) & 3
    if el == 0:
        return VECTOR_LOWER_A64
    return VECTOR_CURRENT_SPX if pstate & 1 else VECTOR_CURRENT_SP0


@dataclass(frozen=True)
class SyncException:
    """A synchronous exception to take to EL1."""

    esr: int
    return_address: int
    """``ELR_EL1``: the preferred return address."""
    far: int | None = None
    """``FAR_EL1`` (aborts); ``None`` leaves it as it was (UNKNOWN for other classes)."""
    what: str = ""

    @property
    def ec(self) -> int:
        """The exception class."""
        return self.esr >> 26


def undefined(pc: int, what: str = "undefined instruction") -> SyncException:
    """An UNDEFINED instruction at ``pc`` (``udf``, unallocated, ``smc`` here)."""
    return SyncException(esr(EC_UNKNOWN), pc, None, what)


def svc(next_pc: int, imm16: int) -> SyncException:
    """``svc #imm16``; the return address is the next instruction."""
    return SyncException(esr(EC_SVC64, imm16 & 0xFFFF), next_pc, None, f"svc #{imm16}")


def brk(pc: int, imm16: int) -> SyncException:
    """``brk #imm16``; the return address is the ``brk`` itself."""
    return SyncException(esr(EC_BRK64, imm16 & 0xFFFF), pc, None, f"brk #{imm16}")


def data_abort(pc: int, address: int, *, write: bool, from_el0: bool, fsc: int) -> SyncException:
    """A data abort at ``pc`` on ``address`` with fault status code ``fsc``."""
    ec = EC_DABT_LOWER if from_el0 else EC_DABT_SAME
    iss = fsc | (ESR_WNR if write else 0)
    kind = "write" if write else "read"
    return SyncException(esr(ec, iss), pc, address, f"data abort ({kind} at {address:#x})")


def instruction_abort(pc: int, *, from_el0: bool, fsc: int) -> SyncException:
    """An instruction abort fetching ``pc``."""
    ec = EC_IABT_LOWER if from_el0 else EC_IABT_SAME
    return SyncException(esr(ec, fsc), pc, pc, f"instruction abort at {pc:#x}")


def svc_immediate(word: int) -> int | None:
    """The immediate of ``svc #imm`` (``0xD4000001``), or ``None``."""
    return (word >> 5) & 0xFFFF if word & 0xFFE0_001F == 0xD400_0001 else None


def brk_immediate(word: int) -> int | None:
    """The immediate of ``brk #imm`` (``0xD4200000``), or ``None``."""
    return (word >> 5) & 0xFFFF if word & 0xFFE0_001F == 0xD420_0000 else None


__all__ = [
    "EC_BRK64", "EC_DABT_LOWER", "EC_DABT_SAME", "EC_IABT_LOWER", "EC_IABT_SAME",
    "EC_SVC64", "EC_UNKNOWN", "ESR_IL", "ESR_WNR", "FSC_ACCESS_FLAG", "FSC_PERMISSION",
    "FSC_SYNC_EXTERNAL", "FSC_TRANSLATION", "VECTOR_CURRENT_SP0", "VECTOR_CURRENT_SPX",
    "VECTOR_IRQ", "VECTOR_LOWER_A64", "VECTOR_SYNC", "SyncException", "brk", "brk_immediate",
    "data_abort", "esr", "instruction_abort", "svc", "svc_immediate", "undefined",
    "vector_base_offset",
]
