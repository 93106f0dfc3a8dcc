"""``Vm``: a KVM virtual machine fd: memory, vCPUs, devices, interrupt lines, VM attributes.

Threads: set-up (memory, vCPUs, devices, the SMCCC filter) from one thread
before any vCPU runs; :meth:`Vm.irq_line` from any thread at any time.
"""

from __future__ import annotations

import errno
import os
from typing import Final

from vcpuhp_kvm import _syscall, uapi
from vcpuhp_kvm._fd import DeviceAttributes
from vcpuhp_kvm.cdefs import new
from vcpuhp_kvm.device import DeviceFd
from vcpuhp_kvm.errors import KvmError
from vcpuhp_kvm.vcpu import VcpuFd, VcpuInit

SPI_INTID_MIN: Final = 32
"""The lowest SPI INTID (0-15 are SGIs, 16-31 PPIs)."""


def irq_line_number(irq_type: int, vcpu_index: int, intid: int) -> int:
    """The ``kvm_irq_level.irq`` word of ``KVM_IRQ_LINE`` on arm64 (``asm/kvm.h`` layout).

    Bits 31:28 ``vcpu2_index`` (vCPU index bits 11:8, ``KVM_CAP_ARM_IRQ_LINE_LAYOUT_2``),
    27:24 the type (``KVM_ARM_IRQ_TYPE_SPI`` / ``_PPI`` / ``_CPU``), 23:16 the vCPU
    index bits 7:0 (PPIs only; 0 for SPIs), 15:0 the INTID.
    """
    if not 0 <= irq_type <= uapi.KVM_ARM_IRQ_TYPE_MASK:
        raise ValueError(f"IRQ type {irq_type} is out of range 0-{uapi.KVM_ARM_IRQ_TYPE_MASK}")
    if not 0 <= intid <= uapi.KVM_ARM_IRQ_NUM_MASK:
        raise ValueError(f"INTID {intid} is out of range 0-{uapi.KVM_ARM_IRQ_NUM_MASK}")
    if not 0 <= vcpu_index < 1 << 12:
        raise ValueError(f"vCPU index {vcpu_index} is out of range 0-4095")
    return (
        ((vcpu_index >> 8) & uapi.KVM_ARM_IRQ_VCPU2_MASK) << uapi.KVM_ARM_IRQ_VCPU2_SHIFT
        | irq_type << uapi.KVM_ARM_IRQ_TYPE_SHIFT
        | (vcpu_index & uapi.KVM_ARM_IRQ_VCPU_MASK) << uapi.KVM_ARM_IRQ_VCPU_SHIFT
        | intid << uapi.KVM_ARM_IRQ_NUM_SHIFT
    )


class Vm(DeviceAttributes):
    """A VM fd from ``KVM_CREATE_VM`` (see :meth:`vcpuhp_kvm.system.Kvm.create_vm`).

    Its device attributes (``set_attr`` ...) are the VM-wide ones of Linux 6.4+
    on arm64, such as the SMCCC filter (:meth:`set_smccc_filter`).
    """

    _kind = "VM fd"

    def __init__(self, fd: int, vcpu_mmap_size: int) -> None:
        super().__init__(fd)
        self._vcpu_mmap_size = vcpu_mmap_size

    def check_extension(self, capability: int) -> int:
        """``KVM_CHECK_EXTENSION`` on the VM fd: this VM's value of ``KVM_CAP_*`` (0 = absent)."""
        return _syscall.ioctl(self.fd, uapi.KVM_CHECK_EXTENSION, "KVM_CHECK_EXTENSION",
                              capability, detail=f"capability {capability} on the VM fd")

    def set_user_memory_region(
        self, slot: int, guest_phys_addr: int, memory_size: int, userspace_addr: int,
        flags: int = 0,
    ) -> None:
        """``KVM_SET_USER_MEMORY_REGION`` (``KVM_CAP_USER_MEMORY``): back guest-physical memory.

        Maps ``memory_size`` bytes of this process at ``userspace_addr`` to
        ``guest_phys_addr`` as memory slot ``slot`` (size 0 deletes the slot).
        Addresses and size must be page-aligned; the host memory must outlive
        the mapping.
        """
        region = new("struct kvm_userspace_memory_region *", {
            "slot": slot, "flags": flags, "guest_phys_addr": guest_phys_addr,
            "memory_size": memory_size, "userspace_addr": userspace_addr,
        })
        _syscall.ioctl(
            self.fd, uapi.KVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION", region,
            detail=(f"slot {slot}: {memory_size:#x} bytes at guest-physical "
                    f"{guest_phys_addr:#x} from host {userspace_addr:#x}"),
        )

    def create_vcpu(self, vcpu_id: int) -> VcpuFd:
        """``KVM_CREATE_VCPU``: a new vCPU with id ``vcpu_id``, its ``kvm_run`` page mapped.

        Fails with ``EBUSY`` once the vGIC is initialised, ``EEXIST`` for an id
        already used and ``EINVAL`` for an id at or above ``KVM_CAP_MAX_VCPU_ID``.
        """
        fd = _syscall.ioctl(self.fd, uapi.KVM_CREATE_VCPU, "KVM_CREATE_VCPU", vcpu_id,
                            detail=self._create_vcpu_detail(vcpu_id))
        try:
            return VcpuFd(fd, vcpu_id, self._vcpu_mmap_size)
        except BaseException:
            os.close(fd)
            raise

    def _create_vcpu_detail(self, vcpu_id: int) -> str:
        return (f"vCPU id {vcpu_id} (every vCPU must exist before the vGIC is initialised; "
                "ids are unique and below KVM_CAP_MAX_VCPU_ID)")

    def arm_preferred_target(self) -> VcpuInit:
        """``KVM_ARM_PREFERRED_TARGET``: the target (no features) for ``KVM_ARM_VCPU_INIT``."""
        init = new("struct kvm_vcpu_init *")
        _syscall.ioctl(self.fd, uapi.KVM_ARM_PREFERRED_TARGET, "KVM_ARM_PREFERRED_TARGET", init)
        return VcpuInit(int(init.target))

    def create_device(self, device_type: int) -> DeviceFd:
        """``KVM_CREATE_DEVICE`` (``KVM_CAP_DEVICE_CTRL``): a ``KVM_DEV_TYPE_*`` device."""
        request = new("struct kvm_create_device *", {"type": device_type})
        _syscall.ioctl(self.fd, uapi.KVM_CREATE_DEVICE, "KVM_CREATE_DEVICE", request,
                       detail=f"device type {device_type}")
        return DeviceFd(int(request.fd), device_type)

    def supports_device(self, device_type: int) -> bool:
        """``KVM_CREATE_DEVICE`` with ``KVM_CREATE_DEVICE_TEST``: could this device be created?"""
        request = new("struct kvm_create_device *",
                          {"type": device_type, "flags": uapi.KVM_CREATE_DEVICE_TEST})
        result, err = _syscall.ioctl_errno(self.fd, uapi.KVM_CREATE_DEVICE, request)
        if result >= 0:
            return True
        if err in (errno.ENODEV, errno.ENXIO, errno.EINVAL):
            return False
        raise KvmError("KVM_CREATE_DEVICE", err, f"test of device type {device_type}")

    def irq_line(self, irq: int, level: bool) -> None:
        """``KVM_IRQ_LINE`` (``KVM_CAP_IRQCHIP``): drive line ``irq`` (:func:`irq_line_number`)."""
        request = new("struct kvm_irq_level *", {"irq": irq, "level": int(level)})
        _syscall.ioctl(self.fd, uapi.KVM_IRQ_LINE, "KVM_IRQ_LINE", request,
                       detail=f"irq word {irq:#010x} level {int(level)}")

    def set_spi(self, intid: int, level: bool) -> None:
        """Drive the shared peripheral interrupt ``intid`` (32 and up) of the in-kernel vGIC."""
        if intid < SPI_INTID_MIN:
            raise ValueError(f"INTID {intid} is not an SPI: SPIs are INTID {SPI_INTID_MIN} and up")
        self.irq_line(irq_line_number(uapi.KVM_ARM_IRQ_TYPE_SPI, 0, intid), level)

    def set_smccc_filter(self, base: int, nr_functions: int, action: int) -> None:
        """``KVM_SET_DEVICE_ATTR(KVM_ARM_VM_SMCCC_CTRL, KVM_ARM_VM_SMCCC_FILTER)`` (Linux 6.4+).

        Applies ``action`` (``KVM_SMCCC_FILTER_*``) to SMCCC function ids
        ``[base, base + nr_functions)``, for HVC and SMC alike. Must be set
        before any vCPU has run (``EBUSY``); ranges must not overlap earlier
        ones nor the Arm architecture calls KVM reserves (``EEXIST``).
        """
        request = new("struct kvm_smccc_filter *",
                      {"base": base, "nr_functions": nr_functions, "action": action})
        self.set_attr(
            uapi.KVM_ARM_VM_SMCCC_CTRL, uapi.KVM_ARM_VM_SMCCC_FILTER, request,
            detail=(f"SMCCC filter for function ids {base:#010x}-{base + nr_functions - 1:#010x},"
                    f" action {action}"),
        )

    def has_smccc_filter(self) -> bool:
        """``KVM_HAS_DEVICE_ATTR``: does this kernel have the SMCCC filter (Linux 6.4+)?"""
        return self.has_attr(uapi.KVM_ARM_VM_SMCCC_CTRL, uapi.KVM_ARM_VM_SMCCC_FILTER)
