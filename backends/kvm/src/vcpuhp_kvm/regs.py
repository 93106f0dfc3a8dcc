"""``KVM_GET_ONE_REG`` / ``KVM_SET_ONE_REG`` register ids of an arm64 vCPU.

Core registers (``asm/kvm.h``: ``KVM_REG_ARM_CORE_REG``) are
``KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | offsetof(struct kvm_regs, X) / 4``,
the offsets taken from the cdef of ``struct kvm_regs``. System registers are
``ARM64_SYS_REG(op0, op1, CRn, CRm, op2)``.
"""

from __future__ import annotations

from typing import Final

from vcpuhp_kvm import uapi
from vcpuhp_kvm.cdefs import ffi

_CORE_U64: Final = uapi.KVM_REG_ARM64 | uapi.KVM_REG_SIZE_U64 | uapi.KVM_REG_ARM_CORE


def _core(*path: str | int) -> int:
    return _CORE_U64 | ffi.offsetof("struct kvm_regs", *path) // 4


def x(n: int) -> int:
    """General-purpose register ``x<n>`` (0-30)."""
    if not 0 <= n <= 30:
        raise ValueError(f"x{n} is not a general-purpose register: x0-x30")
    return _core("regs", "regs", n)


def spsr(n: int) -> int:
    """Banked ``spsr[n]`` of ``struct kvm_regs`` (0 = SPSR_EL1)."""
    if not 0 <= n < uapi.KVM_NR_SPSR:
        raise ValueError(f"spsr[{n}] is out of range 0-{uapi.KVM_NR_SPSR - 1}")
    return _core("spsr", n)


SP: Final = _core("regs", "sp")
"""SP_EL0 (``user_pt_regs.sp``)."""
PC: Final = _core("regs", "pc")
PSTATE: Final = _core("regs", "pstate")
SP_EL1: Final = _core("sp_el1")
ELR_EL1: Final = _core("elr_el1")
SPSR_EL1: Final = spsr(0)


def sysreg(op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    """``ARM64_SYS_REG(op0, op1, CRn, CRm, op2)``: a 64-bit AArch64 system register."""
    fields = (
        (op0, uapi.KVM_REG_ARM64_SYSREG_OP0_SHIFT, uapi.KVM_REG_ARM64_SYSREG_OP0_MASK),
        (op1, uapi.KVM_REG_ARM64_SYSREG_OP1_SHIFT, uapi.KVM_REG_ARM64_SYSREG_OP1_MASK),
        (crn, uapi.KVM_REG_ARM64_SYSREG_CRN_SHIFT, uapi.KVM_REG_ARM64_SYSREG_CRN_MASK),
        (crm, uapi.KVM_REG_ARM64_SYSREG_CRM_SHIFT, uapi.KVM_REG_ARM64_SYSREG_CRM_MASK),
        (op2, uapi.KVM_REG_ARM64_SYSREG_OP2_SHIFT, uapi.KVM_REG_ARM64_SYSREG_OP2_MASK),
    )
    reg = uapi.KVM_REG_ARM64 | uapi.KVM_REG_SIZE_U64 | uapi.KVM_REG_ARM64_SYSREG
    for value, shift, mask in fields:
        if value < 0 or (value << shift) & ~mask:
            raise ValueError(
                f"system register encoding ({op0}, {op1}, {crn}, {crm}, {op2}) "
                "is out of range: op0 0-3, op1 0-7, CRn 0-15, CRm 0-15, op2 0-7"
            )
        reg |= value << shift
    return reg


MPIDR_EL1: Final = sysreg(3, 0, 0, 0, 5)
# asm/kvm.h's timer registers (KVM_REG_ARM_TIMER_CNT and _CVAL carry each other's
# encodings there, a historical mistake the ABI keeps).
KVM_REG_ARM_TIMER_CTL: Final = sysreg(3, 3, 14, 3, 1)
KVM_REG_ARM_TIMER_CNT: Final = sysreg(3, 3, 14, 3, 2)
KVM_REG_ARM_TIMER_CVAL: Final = sysreg(3, 3, 14, 0, 2)

PSTATE_EL1H_DAIF_MASKED: Final = 0x3C5
"""PSTATE of a CPU entering an OS: EL1 using SP_EL1 (EL1h), D, A, I and F masked."""


def size_of(reg_id: int) -> int:
    """Size in bytes of the register ``reg_id`` names (from its ``KVM_REG_SIZE`` field)."""
    return 1 << ((reg_id & uapi.KVM_REG_SIZE_MASK) >> uapi.KVM_REG_SIZE_SHIFT)


def core_register_ids() -> dict[str, int]:
    """Every core register id here by the ``struct kvm_regs`` path it names (for the ABI test)."""
    ids = {f"regs.regs[{n}]": x(n) for n in range(31)}
    ids.update({"regs.sp": SP, "regs.pc": PC, "regs.pstate": PSTATE,
                "sp_el1": SP_EL1, "elr_el1": ELR_EL1})
    ids.update({f"spsr[{n}]": spsr(n) for n in range(uapi.KVM_NR_SPSR)})
    return ids
