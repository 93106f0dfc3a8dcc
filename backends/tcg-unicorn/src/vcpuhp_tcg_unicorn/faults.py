"""What the guest gets for an exception Unicorn reports: a :class:`~.syndrome.SyncException`.

Given the engine (registers, guest memory) and what Unicorn said (an
``EXCP_*`` number, or an unbacked physical address), build the syndrome the
Arm ARM prescribes. The backend takes it with
:meth:`~vcpuhp_tcg_unicorn.engine.Engine.take_exception`.
"""

from __future__ import annotations

from typing import Final

from vcpuhp.errors import GuestError
from vcpuhp_tcg_unicorn.access import MemoryAccess, decode_access, mnemonic
from vcpuhp_tcg_unicorn.engine import (
    EXCP_BKPT,
    EXCP_DATA_ABORT,
    EXCP_PREFETCH_ABORT,
    EXCP_SMC,
    EXCP_SWI,
    Engine,
)
from vcpuhp_tcg_unicorn.mmu import PSTATE_UAO, Translation, walk
from vcpuhp_tcg_unicorn.syndrome import (
    FSC_SYNC_EXTERNAL,
    FSC_TRANSLATION,
    SyncException,
    brk,
    brk_immediate,
    data_abort,
    instruction_abort,
    svc,
    svc_immediate,
    undefined,
)

PAGE: Final = 0x1000


class VcpuFault(GuestError):
    """The guest did something the backend cannot emulate or deliver; that vCPU stopped."""


def translate(engine: Engine, va: int, *, write: bool = False, execute: bool = False,
              as_el0: bool | None = None) -> Translation | None:
    """``va`` through the guest's current EL1&0 translation (``None``: granule not modelled).

    Permissions are checked for the current EL, or for EL0 if ``as_el0`` (an unprivileged
    access at EL1).
    """
    if not engine.mmu_enabled:
        return Translation(va, None)  # the common case, without reading the other registers
    el0 = engine.at_el0 if as_el0 is None else as_el0
    return walk(engine.translation_regime(), va, el0=el0, write=write,
                execute=execute, read_u64=engine.read_physical_u64)


def fetch(engine: Engine, va: int) -> int | None:
    """The instruction word at virtual address ``va``; ``None`` if it cannot be fetched."""
    result = translate(engine, va, execute=True)
    if result is None or result.fsc is not None:
        return None
    value = engine.read_physical_u64(result.address & ~7)
    if value is None:
        return None
    return (value >> (8 * (result.address & 4))) & 0xFFFF_FFFF


def from_exception(engine: Engine, intno: int) -> SyncException | None:
    """The exception to deliver for Unicorn's ``intno`` (``None``: not a synchronous one).

    UNDEFINED instructions (``EXCP_UDEF``) are built by the caller with
    :func:`~.syndrome.undefined` after it checked for the instructions the
    backend emulates.
    """
    pc = engine.pc
    if intno == EXCP_SWI:
        word = fetch(engine, pc - 4)
        immediate = svc_immediate(word) if word is not None else None
        return svc(pc, immediate or 0)
    if intno == EXCP_BKPT:
        word = fetch(engine, pc)
        immediate = brk_immediate(word) if word is not None else None
        return brk(pc, immediate or 0)
    if intno == EXCP_SMC:  # no EL3 on this machine: SMC is UNDEFINED (QEMU virt)
        return undefined(pc - 4, "smc (no EL3; the PSCI conduit is hvc)")
    if intno == EXCP_PREFETCH_ABORT:
        return mmu_instruction_abort(engine, pc)
    if intno == EXCP_DATA_ABORT:
        return mmu_data_abort(engine, pc)
    return None


def mmu_instruction_abort(engine: Engine, pc: int) -> SyncException:
    """The guest's MMU refused to fetch ``pc``."""
    result = translate(engine, pc, execute=True)
    fsc = result.fsc if result is not None and result.fsc is not None else FSC_TRANSLATION
    return instruction_abort(pc, from_el0=engine.at_el0, fsc=fsc)


def decode(engine: Engine, pc: int) -> MemoryAccess | None:
    """The memory access the instruction at ``pc`` makes (``None``: unreadable or none)."""
    word = fetch(engine, pc)
    if word is None:
        return None
    return decode_access(word, pc, engine.register_by_name, dc_zva_bytes=engine.dc_zva_bytes)


def mmu_data_abort(engine: Engine, pc: int) -> SyncException:
    """The guest's MMU refused the access of the load/store at ``pc``.

    An unprivileged load/store (``LDTR``/``STTR``) at EL1 is checked with EL0's
    permissions (unless ``PSTATE.UAO``) and without PAN; the exception is still
    taken from EL1.
    """
    access = decode(engine, pc)
    if access is None:
        word = fetch(engine, pc)
        text = mnemonic(word) if word is not None else "an unreadable instruction"
        raise VcpuFault(f"data abort at pc {pc:#x} on {text}: not a load or store")
    el0 = engine.at_el0
    as_el0 = el0 or (access.unprivileged and not engine.pstate & PSTATE_UAO)
    va, fsc = access.address, FSC_TRANSLATION
    for candidate in (va, (va | (PAGE - 1)) + 1):  # the first page, or the next it spills to
        result = translate(engine, candidate, write=access.write, as_el0=as_el0)
        if result is not None and result.fsc is not None:
            va = max(candidate, va)
            fsc = result.fsc
            break
    return data_abort(pc, va, write=access.write, from_el0=el0, fsc=fsc)


def external_abort(engine: Engine, fetch_access: bool, write: bool,
                   physical: int, pc: int) -> SyncException:
    """The access at ``pc`` to unbacked guest-physical ``physical`` (synchronous external abort)."""
    el0 = engine.at_el0
    if fetch_access:
        return instruction_abort(pc, from_el0=el0, fsc=FSC_SYNC_EXTERNAL)
    va = physical
    if engine.translation_regime().mmu_enabled:
        access = decode(engine, pc)
        if access is not None:
            va = access.address
            if (va & (PAGE - 1)) > (physical & (PAGE - 1)):
                va = (va | (PAGE - 1)) + 1  # the part in the next page faulted
            va = (va & ~(PAGE - 1)) | (physical & (PAGE - 1))
    return data_abort(pc, va, write=write, from_el0=el0, fsc=FSC_SYNC_EXTERNAL)


__all__ = [
    "VcpuFault", "decode", "external_abort", "fetch", "from_exception", "mmu_data_abort",
    "mmu_instruction_abort", "translate",
]
