"""The in-kernel vGICv3 (``Documentation/virt/kvm/devices/arm-vgic-v3.rst``).

KVM's order: create the device, give it the number of IRQs, the distributor
address and one ``REDIST_REGION`` per redistributor region, create **every**
vCPU, then ``KVM_DEV_ARM_VGIC_CTRL_INIT``. After ``CTRL_INIT``,
``KVM_CREATE_VCPU`` fails with ``EBUSY``; the redistributor regions must hold
one redistributor per vCPU (KVM checks that at the first ``KVM_RUN``).
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final, Protocol, Self, TypeVar

from vcpuhp.errors import ConfigError
from vcpuhp_kvm import regs, uapi
from vcpuhp_kvm.device import DeviceFd
from vcpuhp_kvm.errors import KvmError
from vcpuhp_kvm.vm import Vm

_T = TypeVar("_T")
_RDIST_INDEX_BITS: Final = 12
_RDIST_FLAGS_SHIFT: Final = 12
_RDIST_BASE_SHIFT: Final = 16
_RDIST_BASE_BITS: Final = 36
_RDIST_COUNT_SHIFT: Final = 52
_RDIST_COUNT_BITS: Final = 12
_GICD_CTLR: Final = 0x0000
_GICD_ICENABLER: Final = 0x0180
_GICD_ISPENDR: Final = 0x0200
_GICD_ICACTIVER: Final = 0x0380
_SGI_FRAME: Final = 0x1_0000
"""A redistributor's SGI_base frame, after its RD_base frame (the attribute's offsets
are relative to the redistributor's base)."""
GICR_ICENABLER0: Final = _SGI_FRAME + 0x0180
GICR_ISPENDR0: Final = _SGI_FRAME + 0x0200
GICR_ICACTIVER0: Final = _SGI_FRAME + 0x0380
PPI_BITS: Final = 0xFFFF_0000
"""INTIDs 16-31 of a private-interrupt register word."""
ALL_BITS: Final = 0xFFFF_FFFF


def _icc(op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    return regs.sysreg(op0, op1, crn, crm, op2) & uapi.KVM_DEV_ARM_VGIC_SYSREG_INSTR_MASK


ICC_PMR_EL1: Final = _icc(3, 0, 4, 6, 0)
ICC_AP0R_EL1: Final = tuple(_icc(3, 0, 12, 8, 4 + n) for n in range(4))
ICC_AP1R_EL1: Final = tuple(_icc(3, 0, 12, 9, n) for n in range(4))
ICC_CTLR_EL1: Final = _icc(3, 0, 12, 12, 4)
ICC_IGRPEN0_EL1: Final = _icc(3, 0, 12, 12, 6)
ICC_IGRPEN1_EL1: Final = _icc(3, 0, 12, 12, 7)
_ICC_CTLR_PRIBITS_SHIFT: Final = 8
_BUSY_RETRIES: Final = 50
_BUSY_PAUSE: Final = 0.01


def attr_mpidr(arch_id: int) -> int:
    """The ``mpidr`` field (bits 63:32) of a redistributor or CPU-interface attribute.

    ``arch_id`` holds the affinity as ``MPIDR_EL1`` does (Aff3 in bits 39:32,
    Aff2.Aff1.Aff0 in 23:0); the attribute packs it as Aff3.Aff2.Aff1.Aff0.
    """
    packed = ((arch_id >> 32) & 0xFF) << 24 | arch_id & 0xFF_FFFF
    return packed << uapi.KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT


class RedistributorRegionLike(Protocol):
    """A redistributor region's base and count (``vcpuhp.gic.RedistributorRegion`` has them)."""

    @property
    def base(self) -> int: ...

    @property
    def count(self) -> int: ...


def redist_region_attr(index: int, base: int, count: int) -> int:
    """The ``u64`` of ``KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION`` (arm-vgic-v3.rst).

    Bits 63:52 ``count`` (redistributors in the region), 51:16 ``base``
    (64 KiB aligned, so its low 16 bits are the zeros below), 15:12 flags
    (zero), 11:0 ``index`` (regions are numbered 0, 1, ... in order).
    """
    if not 0 <= index < 1 << _RDIST_INDEX_BITS:
        raise ConfigError(f"redistributor region index {index} is out of range 0-4095")
    if not 0 < count < 1 << _RDIST_COUNT_BITS:
        raise ConfigError(f"redistributor region {index} count {count} is out of range 1-4095")
    base_limit = 1 << (_RDIST_BASE_SHIFT + _RDIST_BASE_BITS)
    if base % uapi.KVM_VGIC_V3_DIST_SIZE or not 0 <= base < base_limit:
        raise ConfigError(
            f"redistributor region {index} base {base:#x} must be 64 KiB aligned and below 2**52"
        )
    return count << _RDIST_COUNT_SHIFT | base | index


def decode_redist_region_attr(value: int) -> tuple[int, int, int]:
    """``(index, base, count)`` of a ``REDIST_REGION`` attribute word."""
    index = value & ((1 << _RDIST_INDEX_BITS) - 1)
    base = value & (((1 << _RDIST_BASE_BITS) - 1) << _RDIST_BASE_SHIFT)
    count = value >> _RDIST_COUNT_SHIFT
    return index, base, count


class Vgicv3:
    """A VM's ``KVM_DEV_TYPE_ARM_VGIC_V3`` device, set up by :meth:`create`.

    Closing it closes the device fd; the vGIC itself lives as long as the VM.
    """

    def __init__(self, device: DeviceFd) -> None:
        self.device = device

    def close(self) -> None:
        """Close the device fd (idempotent)."""
        self.device.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @classmethod
    def create(
        cls,
        vm: Vm,
        distributor_base: int,
        redistributor_regions: Sequence[RedistributorRegionLike],
        nr_irqs: int,
    ) -> Vgicv3:
        """Create the vGICv3 and give it its addresses and number of IRQs (not initialised yet).

        ``redistributor_regions`` in guest order, as ``vcpuhp.gic.layout_redistributors``
        lays them out; ``nr_irqs`` counts every INTID including the 32 private
        ones (a multiple of 32). Needs ``KVM_CAP_DEVICE_CTRL``. On failure the
        device fd is closed (KVM keeps the device for the VM's lifetime).
        """
        if not redistributor_regions:
            raise ConfigError("a vGICv3 needs at least one redistributor region")
        words = [redist_region_attr(index, region.base, region.count)
                 for index, region in enumerate(redistributor_regions)]
        device = vm.create_device(uapi.KVM_DEV_TYPE_ARM_VGIC_V3)
        try:
            device.set_attr_u32(uapi.KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, nr_irqs)
            device.set_attr_u64(uapi.KVM_DEV_ARM_VGIC_GRP_ADDR, uapi.KVM_VGIC_V3_ADDR_TYPE_DIST,
                                distributor_base)
            for word in words:
                device.set_attr_u64(uapi.KVM_DEV_ARM_VGIC_GRP_ADDR,
                                    uapi.KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION, word)
        except BaseException:
            device.close()
            raise
        return cls(device)

    def initialize(self) -> None:
        """``KVM_DEV_ARM_VGIC_CTRL_INIT``: after this no vCPU can be created."""
        self.device.set_attr(uapi.KVM_DEV_ARM_VGIC_GRP_CTRL, uapi.KVM_DEV_ARM_VGIC_CTRL_INIT)

    def nr_irqs(self) -> int:
        """``KVM_DEV_ARM_VGIC_GRP_NR_IRQS`` as KVM holds it."""
        return self.device.get_attr_u32(uapi.KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0)

    def distributor_base(self) -> int:
        """The distributor's guest-physical address as KVM holds it."""
        return self.device.get_attr_u64(uapi.KVM_DEV_ARM_VGIC_GRP_ADDR,
                                        uapi.KVM_VGIC_V3_ADDR_TYPE_DIST)

    def distributor_register(self, offset: int) -> int:
        """A 32-bit distributor register (``KVM_DEV_ARM_VGIC_GRP_DIST_REGS``) as KVM holds it.

        Only while no vCPU runs: KVM takes every vCPU's lock for it.
        """
        return self.device.get_attr_u32(uapi.KVM_DEV_ARM_VGIC_GRP_DIST_REGS, offset)

    def set_distributor_register(self, offset: int, value: int) -> None:
        """Write a 32-bit distributor register as a user-space access (no vCPU may run)."""
        self.device.set_attr_u32(uapi.KVM_DEV_ARM_VGIC_GRP_DIST_REGS, offset, value)

    def spi_pending(self, intid: int) -> bool:
        """Whether ``intid``'s pending latch is set (``GICD_ISPENDR`` as user space reads it).

        An edge-triggered SPI (KVM's reset state) latches when its line rises;
        for a level-sensitive one the line is separate: :meth:`spi_line_level`.
        """
        word = self.distributor_register(_GICD_ISPENDR + 4 * (intid // 32))
        return bool(word >> (intid % 32) & 1)

    def spi_line_level(self, intid: int) -> bool:
        """The level of ``intid``'s input line (``KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO``)."""
        attr = (uapi.VGIC_LEVEL_INFO_LINE_LEVEL << uapi.KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT
                | intid & ~31)
        word = self.device.get_attr_u32(uapi.KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO, attr)
        return bool(word >> (intid % 32) & 1)

    def redistributor_register(self, arch_id: int, offset: int) -> int:
        """A 32-bit register of CPU ``arch_id``'s redistributor (``GRP_REDIST_REGS``).

        ``offset`` from the redistributor's base (the SGI frame at 0x10000).
        Only while no vCPU runs.
        """
        return self.device.get_attr_u32(uapi.KVM_DEV_ARM_VGIC_GRP_REDIST_REGS,
                                        attr_mpidr(arch_id) | offset)

    def set_redistributor_register(self, arch_id: int, offset: int, value: int) -> None:
        """Write a redistributor register as a user-space access (no vCPU may run)."""
        self.device.set_attr_u32(uapi.KVM_DEV_ARM_VGIC_GRP_REDIST_REGS,
                                 attr_mpidr(arch_id) | offset, value)

    def cpu_sysreg(self, arch_id: int, encoding: int) -> int:
        """CPU ``arch_id``'s ``ICC_*`` register ``encoding`` (``GRP_CPU_SYSREGS``, 64-bit)."""
        return self.device.get_attr_u64(uapi.KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS,
                                        attr_mpidr(arch_id) | encoding)

    def set_cpu_sysreg(self, arch_id: int, encoding: int, value: int) -> None:
        """Write CPU ``arch_id``'s ``ICC_*`` register ``encoding`` (no vCPU may run)."""
        self.device.set_attr_u64(uapi.KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS,
                                 attr_mpidr(arch_id) | encoding, value)

    def reset_interrupt_state(self, arch_ids: Iterable[int]) -> None:
        """A system reset of the vGIC's dynamic state: what the last run left behind.

        Distributor: disabled, and every SPI disabled, not pending (the latch)
        and not active. For each CPU of ``arch_ids`` (those that ran): its PPIs
        disabled (SGIs stay enabled, as KVM creates them), every private
        interrupt neither pending nor active, and its CPU interface's active
        priorities, priority mask and group enables cleared. Without this an
        interrupt a guest was handling when it reset stays *active* and is
        never delivered again, and the CPU's running priority masks its equals.
        Groups, priorities, trigger configuration and routing stay: a booting
        guest programs them. A level line keeps its level (the caller lowers
        the lines it drives).

        KVM takes these accesses only while no vCPU of the VM is inside an
        ioctl (``EBUSY`` otherwise): the caller stops them first; a vCPU thread
        finishing a register access is waited for, briefly.
        """
        words = range(1, self.nr_irqs() // 32)
        self._uaccess(self.set_distributor_register, _GICD_CTLR, 0)
        for n in words:
            self._uaccess(self.set_distributor_register, _GICD_ICENABLER + 4 * n, ALL_BITS)
            self._uaccess(self.set_distributor_register, _GICD_ICACTIVER + 4 * n, ALL_BITS)
            self._uaccess(self.set_distributor_register, _GICD_ISPENDR + 4 * n, 0)
        for arch_id in arch_ids:
            redist = self.set_redistributor_register
            self._uaccess(redist, arch_id, GICR_ICENABLER0, PPI_BITS)
            self._uaccess(redist, arch_id, GICR_ICACTIVER0, ALL_BITS)
            self._uaccess(redist, arch_id, GICR_ISPENDR0, 0)
            ctlr = self._uaccess(self.cpu_sysreg, arch_id, ICC_CTLR_EL1)
            priority_bits = (ctlr >> _ICC_CTLR_PRIBITS_SHIFT & 0x7) + 1
            registers = 1 << max(0, priority_bits - 5)  # 5 bits: one AP*R, 6: two, 7: four
            for encoding in (*ICC_AP0R_EL1[:registers], *ICC_AP1R_EL1[:registers],
                             ICC_PMR_EL1, ICC_IGRPEN0_EL1, ICC_IGRPEN1_EL1):
                self._uaccess(self.set_cpu_sysreg, arch_id, encoding, 0)

    @staticmethod
    def _uaccess(access: Callable[..., _T], *args: int) -> _T:
        """``access(*args)``, retried while KVM answers ``EBUSY`` (a vCPU ioctl in progress)."""
        attempts = 0
        while True:
            try:
                return access(*args)
            except KvmError as exc:
                attempts += 1
                if exc.errno != errno.EBUSY or attempts >= _BUSY_RETRIES:
                    raise
            time.sleep(_BUSY_PAUSE)

    def redistributor_region(self, index: int) -> tuple[int, int]:
        """``(base, count)`` of redistributor region ``index`` as KVM holds it."""
        word = self.device.get_attr_u64(uapi.KVM_DEV_ARM_VGIC_GRP_ADDR,
                                        uapi.KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION, index)
        _, base, count = decode_redist_region_attr(word)
        return base, count
