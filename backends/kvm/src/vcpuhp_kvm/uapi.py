"""KVM UAPI numbers for arm64: ioctls, capabilities, exit reasons, device attributes.

Each name is the header's own, and each value says which header defines it:
``linux/kvm.h`` and ``asm/kvm.h`` are the arm64 UAPI headers
(``/usr/aarch64-linux-gnu/include`` from Debian's ``linux-libc-dev-arm64-cross``).
The few marked "Linux 6.4" are newer than Debian bookworm's 6.1 headers and come
from the 6.4 UAPI and ``Documentation/virt/kvm/devices/vm.rst``.
``tests/kvm/test_kvm_abi.py`` compares every value here with the headers.

Ioctl numbers are computed once, by :func:`_IOC`, from each ioctl's direction,
number and argument struct (whose size comes from :mod:`vcpuhp_kvm.cdefs`).
"""

from __future__ import annotations

from typing import Final

from vcpuhp_kvm.cdefs import ffi

# --- asm-generic/ioctl.h: the ioctl number encoding (arm64 uses the generic one) ---
_IOC_NRBITS: Final = 8
_IOC_TYPEBITS: Final = 8
_IOC_SIZEBITS: Final = 14
_IOC_NRSHIFT: Final = 0
_IOC_TYPESHIFT: Final = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT: Final = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT: Final = _IOC_SIZESHIFT + _IOC_SIZEBITS
_IOC_NONE: Final = 0
_IOC_WRITE: Final = 1
_IOC_READ: Final = 2


def _IOC(direction: int, kind: int, nr: int, size: int) -> int:  # noqa: N802 (the header's name)
    """``_IOC(dir, type, nr, size)`` of ``asm-generic/ioctl.h``."""
    if not 0 <= size < 1 << _IOC_SIZEBITS:
        raise ValueError(f"ioctl argument size {size} does not fit in {_IOC_SIZEBITS} bits")
    return (
        (direction << _IOC_DIRSHIFT)
        | (kind << _IOC_TYPESHIFT)
        | (nr << _IOC_NRSHIFT)
        | (size << _IOC_SIZESHIFT)
    )


def _IO(kind: int, nr: int) -> int:  # noqa: N802
    return _IOC(_IOC_NONE, kind, nr, 0)


def _IOR(kind: int, nr: int, struct: str) -> int:  # noqa: N802
    return _IOC(_IOC_READ, kind, nr, ffi.sizeof(struct))


def _IOW(kind: int, nr: int, struct: str) -> int:  # noqa: N802
    return _IOC(_IOC_WRITE, kind, nr, ffi.sizeof(struct))


def _IOWR(kind: int, nr: int, struct: str) -> int:  # noqa: N802
    return _IOC(_IOC_READ | _IOC_WRITE, kind, nr, ffi.sizeof(struct))


# --- linux/kvm.h: API version and ioctls ---
KVM_API_VERSION: Final = 12
KVMIO: Final = 0xAE

# on the /dev/kvm fd
KVM_GET_API_VERSION: Final = _IO(KVMIO, 0x00)
KVM_CREATE_VM: Final = _IO(KVMIO, 0x01)
KVM_CHECK_EXTENSION: Final = _IO(KVMIO, 0x03)  # also on a VM fd
KVM_GET_VCPU_MMAP_SIZE: Final = _IO(KVMIO, 0x04)
# on a VM fd
KVM_CREATE_VCPU: Final = _IO(KVMIO, 0x41)
KVM_SET_USER_MEMORY_REGION: Final = _IOW(KVMIO, 0x46, "struct kvm_userspace_memory_region")
KVM_IRQ_LINE: Final = _IOW(KVMIO, 0x61, "struct kvm_irq_level")
KVM_ARM_PREFERRED_TARGET: Final = _IOR(KVMIO, 0xAF, "struct kvm_vcpu_init")
KVM_CREATE_DEVICE: Final = _IOWR(KVMIO, 0xE0, "struct kvm_create_device")
# on a device fd, a VM fd (Linux 6.4+ on arm64) or a vCPU fd
KVM_SET_DEVICE_ATTR: Final = _IOW(KVMIO, 0xE1, "struct kvm_device_attr")
KVM_GET_DEVICE_ATTR: Final = _IOW(KVMIO, 0xE2, "struct kvm_device_attr")
KVM_HAS_DEVICE_ATTR: Final = _IOW(KVMIO, 0xE3, "struct kvm_device_attr")
# on a vCPU fd
KVM_RUN: Final = _IO(KVMIO, 0x80)
KVM_GET_MP_STATE: Final = _IOR(KVMIO, 0x98, "struct kvm_mp_state")
KVM_GET_VCPU_EVENTS: Final = _IOR(KVMIO, 0x9F, "struct kvm_vcpu_events")
KVM_SET_VCPU_EVENTS: Final = _IOW(KVMIO, 0xA0, "struct kvm_vcpu_events")
KVM_SET_MP_STATE: Final = _IOW(KVMIO, 0x99, "struct kvm_mp_state")
KVM_GET_ONE_REG: Final = _IOW(KVMIO, 0xAB, "struct kvm_one_reg")
KVM_SET_ONE_REG: Final = _IOW(KVMIO, 0xAC, "struct kvm_one_reg")
KVM_ARM_VCPU_INIT: Final = _IOW(KVMIO, 0xAE, "struct kvm_vcpu_init")
KVM_GET_REG_LIST: Final = _IOWR(KVMIO, 0xB0, "struct kvm_reg_list")

# --- linux/kvm.h: capabilities (KVM_CHECK_EXTENSION) ---
KVM_CAP_IRQCHIP: Final = 0
KVM_CAP_USER_MEMORY: Final = 3
KVM_CAP_NR_VCPUS: Final = 9
KVM_CAP_MP_STATE: Final = 14
KVM_CAP_VCPU_EVENTS: Final = 41
KVM_CAP_MAX_VCPUS: Final = 66
KVM_CAP_ONE_REG: Final = 70
KVM_CAP_ARM_PSCI: Final = 87
KVM_CAP_DEVICE_CTRL: Final = 89
KVM_CAP_ARM_PSCI_0_2: Final = 102
KVM_CAP_MAX_VCPU_ID: Final = 128
KVM_CAP_IMMEDIATE_EXIT: Final = 136
KVM_CAP_ARM_VM_IPA_SIZE: Final = 165
KVM_CAP_ARM_IRQ_LINE_LAYOUT_2: Final = 174
KVM_CAP_ARM_NISV_TO_USER: Final = 177
KVM_CAP_ARM_INJECT_EXT_DABT: Final = 178

# --- linux/kvm.h: exit reasons (kvm_run.exit_reason) ---
KVM_EXIT_UNKNOWN: Final = 0
KVM_EXIT_HYPERCALL: Final = 3
KVM_EXIT_MMIO: Final = 6
KVM_EXIT_FAIL_ENTRY: Final = 9
KVM_EXIT_INTR: Final = 10
KVM_EXIT_INTERNAL_ERROR: Final = 17
KVM_EXIT_SYSTEM_EVENT: Final = 24
KVM_EXIT_ARM_NISV: Final = 28

# linux/kvm.h: kvm_run.system_event.type
KVM_SYSTEM_EVENT_SHUTDOWN: Final = 1
KVM_SYSTEM_EVENT_RESET: Final = 2
KVM_SYSTEM_EVENT_CRASH: Final = 3
KVM_SYSTEM_EVENT_WAKEUP: Final = 4
KVM_SYSTEM_EVENT_SUSPEND: Final = 5

# linux/kvm.h: kvm_userspace_memory_region.flags
KVM_MEM_LOG_DIRTY_PAGES: Final = 1 << 0
KVM_MEM_READONLY: Final = 1 << 1

# linux/kvm.h: KVM_CREATE_VM machine type on arm64 (bits 7:0: IPA size, 0 = 40 bits)
KVM_VM_TYPE_ARM_IPA_SIZE_MASK: Final = 0xFF

# linux/kvm.h: kvm_mp_state.mp_state values used on arm64
KVM_MP_STATE_RUNNABLE: Final = 0
KVM_MP_STATE_STOPPED: Final = 5
KVM_MP_STATE_SUSPENDED: Final = 10

# linux/kvm.h: KVM_CREATE_DEVICE
KVM_CREATE_DEVICE_TEST: Final = 1
KVM_DEV_TYPE_ARM_VGIC_V3: Final = 7  # enum kvm_device_type

# linux/kvm.h: one-reg id fields
KVM_REG_ARM64: Final = 0x6000_0000_0000_0000
KVM_REG_SIZE_SHIFT: Final = 52
KVM_REG_SIZE_MASK: Final = 0x00F0_0000_0000_0000
KVM_REG_SIZE_U32: Final = 0x0020_0000_0000_0000
KVM_REG_SIZE_U64: Final = 0x0030_0000_0000_0000

# --- asm/kvm.h (arm64): one-reg coprocessor classes and the sysreg encoding ---
KVM_REG_ARM_COPROC_SHIFT: Final = 16
KVM_REG_ARM_CORE: Final = 0x0010 << KVM_REG_ARM_COPROC_SHIFT
KVM_REG_ARM64_SYSREG: Final = 0x0013 << KVM_REG_ARM_COPROC_SHIFT
KVM_REG_ARM64_SYSREG_OP0_MASK: Final = 0x0000_0000_0000_C000
KVM_REG_ARM64_SYSREG_OP0_SHIFT: Final = 14
KVM_REG_ARM64_SYSREG_OP1_MASK: Final = 0x0000_0000_0000_3800
KVM_REG_ARM64_SYSREG_OP1_SHIFT: Final = 11
KVM_REG_ARM64_SYSREG_CRN_MASK: Final = 0x0000_0000_0000_0780
KVM_REG_ARM64_SYSREG_CRN_SHIFT: Final = 7
KVM_REG_ARM64_SYSREG_CRM_MASK: Final = 0x0000_0000_0000_0078
KVM_REG_ARM64_SYSREG_CRM_SHIFT: Final = 3
KVM_REG_ARM64_SYSREG_OP2_MASK: Final = 0x0000_0000_0000_0007
KVM_REG_ARM64_SYSREG_OP2_SHIFT: Final = 0
KVM_NR_SPSR: Final = 5

# asm/kvm.h (arm64): kvm_vcpu_init.features[0] bit numbers
KVM_ARM_VCPU_POWER_OFF: Final = 0
KVM_ARM_VCPU_EL1_32BIT: Final = 1
KVM_ARM_VCPU_PSCI_0_2: Final = 2
KVM_ARM_VCPU_PMU_V3: Final = 3
KVM_ARM_VCPU_SVE: Final = 4
KVM_ARM_VCPU_PTRAUTH_ADDRESS: Final = 5
KVM_ARM_VCPU_PTRAUTH_GENERIC: Final = 6

# asm/kvm.h (arm64): KVM_IRQ_LINE irq field layout
KVM_ARM_IRQ_VCPU2_SHIFT: Final = 28
KVM_ARM_IRQ_VCPU2_MASK: Final = 0xF
KVM_ARM_IRQ_TYPE_SHIFT: Final = 24
KVM_ARM_IRQ_TYPE_MASK: Final = 0xF
KVM_ARM_IRQ_VCPU_SHIFT: Final = 16
KVM_ARM_IRQ_VCPU_MASK: Final = 0xFF
KVM_ARM_IRQ_NUM_SHIFT: Final = 0
KVM_ARM_IRQ_NUM_MASK: Final = 0xFFFF
KVM_ARM_IRQ_TYPE_CPU: Final = 0
KVM_ARM_IRQ_TYPE_SPI: Final = 1
KVM_ARM_IRQ_TYPE_PPI: Final = 2

# asm/kvm.h (arm64): vGIC device attributes
KVM_DEV_ARM_VGIC_GRP_ADDR: Final = 0
KVM_DEV_ARM_VGIC_GRP_DIST_REGS: Final = 1
KVM_DEV_ARM_VGIC_GRP_NR_IRQS: Final = 3
KVM_DEV_ARM_VGIC_GRP_CTRL: Final = 4
KVM_DEV_ARM_VGIC_GRP_REDIST_REGS: Final = 5
KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS: Final = 6
KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO: Final = 7
KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT: Final = 32
KVM_DEV_ARM_VGIC_SYSREG_INSTR_MASK: Final = 0xFFFF
KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT: Final = 10
VGIC_LEVEL_INFO_LINE_LEVEL: Final = 0
KVM_DEV_ARM_VGIC_CTRL_INIT: Final = 0
KVM_VGIC_V3_ADDR_TYPE_DIST: Final = 2
KVM_VGIC_V3_ADDR_TYPE_REDIST: Final = 3
KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION: Final = 5
KVM_VGIC_V3_DIST_SIZE: Final = 0x1_0000
KVM_VGIC_V3_REDIST_SIZE: Final = 2 * 0x1_0000

# --- asm/kvm.h (arm64), Linux 6.4: the SMCCC filter (Documentation/virt/kvm/devices/vm.rst) ---
KVM_ARM_VM_SMCCC_CTRL: Final = 0
KVM_ARM_VM_SMCCC_FILTER: Final = 0
KVM_SMCCC_FILTER_HANDLE: Final = 0  # enum kvm_smccc_filter_action
KVM_SMCCC_FILTER_DENY: Final = 1
KVM_SMCCC_FILTER_FWD_TO_USER: Final = 2
# kvm_run.hypercall.flags on arm64
KVM_HYPERCALL_EXIT_SMC: Final = 1 << 0
KVM_HYPERCALL_EXIT_16BIT: Final = 1 << 1

LINUX_6_4_NAMES: Final = frozenset(
    {
        "KVM_ARM_VM_SMCCC_CTRL", "KVM_ARM_VM_SMCCC_FILTER", "KVM_SMCCC_FILTER_HANDLE",
        "KVM_SMCCC_FILTER_DENY", "KVM_SMCCC_FILTER_FWD_TO_USER", "KVM_HYPERCALL_EXIT_SMC",
        "KVM_HYPERCALL_EXIT_16BIT",
    }
)
"""Constants first defined in the Linux 6.4 UAPI (absent from 6.1 headers)."""


def uapi_constants() -> dict[str, int]:
    """Every UAPI constant and ioctl number defined here, by its header name."""
    return {
        name: value
        for name, value in globals().items()
        if name.startswith(("KVM_", "KVMIO", "_IOC_", "VGIC_")) and isinstance(value, int)
    }
