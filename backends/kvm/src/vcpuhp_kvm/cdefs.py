"""The C declarations the KVM layer uses, for cffi in ABI mode (no compiler at install time).

Every struct is declared with the same field names and the same fixed-width
types as the arm64 UAPI headers (``linux/kvm.h``, ``asm/kvm.h``, Linux 6.4+),
so its layout is the kernel's on any LP64 host; ``tests/kvm/test_kvm_abi.py``
compiles the real headers with ``aarch64-linux-gnu-gcc`` and checks every
size and offset declared here. Only the members this layer touches are
declared, and each union keeps its full size with the header's own padding
member, so the offsets after it stay right.

libc is opened lazily (:func:`libc`): importing this module, and the layout
checks, work on any host.
"""

from __future__ import annotations

import functools
from typing import Any

import cffi

CDEF = r"""
/* linux/kvm.h: struct kvm_userspace_memory_region (KVM_SET_USER_MEMORY_REGION) */
struct kvm_userspace_memory_region {
    uint32_t slot;
    uint32_t flags;
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
};

/* linux/kvm.h: struct kvm_irq_level (KVM_IRQ_LINE) */
struct kvm_irq_level {
    union {
        uint32_t irq;
        int32_t status;
    };
    uint32_t level;
};

/* linux/kvm.h: struct kvm_one_reg (KVM_GET_ONE_REG / KVM_SET_ONE_REG) */
struct kvm_one_reg {
    uint64_t id;
    uint64_t addr;
};

/* linux/kvm.h: struct kvm_reg_list (KVM_GET_REG_LIST); reg[] is a flexible array */
struct kvm_reg_list {
    uint64_t n;
    uint64_t reg[];
};

/* linux/kvm.h: struct kvm_mp_state (KVM_GET_MP_STATE / KVM_SET_MP_STATE) */
struct kvm_mp_state {
    uint32_t mp_state;
};

/* linux/kvm.h: struct kvm_device_attr (KVM_{SET,GET,HAS}_DEVICE_ATTR) */
struct kvm_device_attr {
    uint32_t flags;
    uint32_t group;
    uint64_t attr;
    uint64_t addr;
};

/* linux/kvm.h: struct kvm_create_device (KVM_CREATE_DEVICE) */
struct kvm_create_device {
    uint32_t type;
    uint32_t fd;
    uint32_t flags;
};

/* asm/kvm.h (arm64): struct kvm_vcpu_init (KVM_ARM_VCPU_INIT, KVM_ARM_PREFERRED_TARGET) */
struct kvm_vcpu_init {
    uint32_t target;
    uint32_t features[7];
};

/* asm/kvm.h (arm64) since Linux 6.4: struct kvm_smccc_filter (KVM_ARM_VM_SMCCC_FILTER) */
struct kvm_smccc_filter {
    uint32_t base;
    uint32_t nr_functions;
    uint8_t action;
    uint8_t pad[15];
};

/* asm/kvm.h (arm64): struct kvm_vcpu_events (KVM_GET/SET_VCPU_EVENTS, KVM_CAP_VCPU_EVENTS);
   ext_dabt_pending needs KVM_CAP_ARM_INJECT_EXT_DABT */
struct kvm_vcpu_events {
    struct {
        uint8_t serror_pending;
        uint8_t serror_has_esr;
        uint8_t ext_dabt_pending;
        uint8_t pad[5];
        uint64_t serror_esr;
    } exception;
    uint32_t reserved[12];
};

/* asm/ptrace.h (arm64): struct user_pt_regs, the first member of struct kvm_regs */
struct user_pt_regs {
    uint64_t regs[31];
    uint64_t sp;
    uint64_t pc;
    uint64_t pstate;
};

/* asm/kvm.h (arm64): struct kvm_regs up to spsr[]. Its offsets / 4 are the
   KVM_REG_ARM_CORE register ids; the trailing fp_regs (128-bit vregs) are not
   declared, so this is an offset table, never an ioctl argument (arm64 has
   no KVM_GET_REGS). */
struct kvm_regs {
    struct user_pt_regs regs;
    uint64_t sp_el1;
    uint64_t elr_el1;
    uint64_t spsr[5];
};

/* linux/kvm.h: struct kvm_run, the vCPU's shared page (mmap of the vCPU fd).
   The exit union lists the members this layer decodes; padding[256] fixes its
   size as in the header. */
struct kvm_run {
    uint8_t request_interrupt_window;
    uint8_t immediate_exit;
    uint8_t padding1[6];
    uint32_t exit_reason;
    uint8_t ready_for_interrupt_injection;
    uint8_t if_flag;
    uint16_t flags;
    uint64_t cr8;
    uint64_t apic_base;
    union {
        /* KVM_EXIT_UNKNOWN */
        struct {
            uint64_t hardware_exit_reason;
        } hw;
        /* KVM_EXIT_FAIL_ENTRY */
        struct {
            uint64_t hardware_entry_failure_reason;
            uint32_t cpu;
        } fail_entry;
        /* KVM_EXIT_MMIO */
        struct {
            uint64_t phys_addr;
            uint8_t data[8];
            uint32_t len;
            uint8_t is_write;
        } mmio;
        /* KVM_EXIT_HYPERCALL; `flags` is the Linux 6.4+ name of the 64 bits that
           were `longmode` + `pad` before (same offset, same size) */
        struct {
            uint64_t nr;
            uint64_t args[6];
            uint64_t ret;
            uint64_t flags;
        } hypercall;
        /* KVM_EXIT_INTERNAL_ERROR */
        struct {
            uint32_t suberror;
            uint32_t ndata;
            uint64_t data[16];
        } internal;
        /* KVM_EXIT_SYSTEM_EVENT */
        struct {
            uint32_t type;
            uint32_t ndata;
            union {
                uint64_t flags;
                uint64_t data[16];
            };
        } system_event;
        /* KVM_EXIT_ARM_NISV */
        struct {
            uint64_t esr_iss;
            uint64_t fault_ipa;
        } arm_nisv;
        char padding[256];
    };
    uint64_t kvm_valid_regs;
    uint64_t kvm_dirty_regs;
    union {
        char padding[2048];
    } s;
};

/* libc */
int ioctl(int fd, unsigned long request, ...);
void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
int munmap(void *addr, size_t length);
"""

ffi = cffi.FFI()
ffi.cdef(CDEF)

STRUCTS = (
    "kvm_userspace_memory_region",
    "kvm_irq_level",
    "kvm_one_reg",
    "kvm_reg_list",
    "kvm_mp_state",
    "kvm_device_attr",
    "kvm_create_device",
    "kvm_vcpu_init",
    "kvm_smccc_filter",
    "kvm_vcpu_events",
    "user_pt_regs",
    "kvm_regs",
    "kvm_run",
)
"""Every struct declared in :data:`CDEF` (the ABI test checks each one)."""



@functools.cache
def libc() -> Any:
    """The C library (``ioctl``, ``mmap``, ``munmap``), opened on first use."""
    return ffi.dlopen(None)


def new(ctype: str, init: object = None) -> Any:
    """``ffi.new(ctype, init)``, typed ``Any`` so that struct fields type-check."""
    return ffi.new(ctype, init)


def address(cdata: Any) -> int:
    """The address a cffi pointer or array points to, as an integer (for ``__u64 addr`` fields)."""
    return int(ffi.cast("uintptr_t", cdata))
