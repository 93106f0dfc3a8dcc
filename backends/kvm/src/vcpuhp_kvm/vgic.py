"""The in-kernel vGICv3 (``Documentation/virt/kvm/devices/arm-vgic-v3.rst``).

KVM's order: create the device, give it the number of IRQs, the distributor
address and one ``REDIST_REGION`` per redistributor region, create **every**
vCPU, then ``KVM_DEV_ARM_VGIC_CTRL_INIT``. After ``CTRL_INIT``,
``KVM_CREATE_VCPU`` fails with ``EBUSY``; the redistributor regions must hold
one redistributor per vCPU (KVM checks that at the first ``KVM_RUN``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol, Self

from vcpuhp.errors import ConfigError
from vcpuhp_kvm import uapi
from vcpuhp_kvm.device import DeviceFd
from vcpuhp_kvm.vm import Vm

_RDIST_INDEX_BITS: Final = 12
_RDIST_FLAGS_SHIFT: Final = 12
_RDIST_BASE_SHIFT: Final = 16
_RDIST_BASE_BITS: Final = 36
_RDIST_COUNT_SHIFT: Final = 52
_RDIST_COUNT_BITS: Final = 12
_GICD_ISPENDR: Final = 0x0200


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

    def redistributor_region(self, index: int) -> tuple[int, int]:
        """``(base, count)`` of redistributor region ``index`` as KVM holds it."""
        word = self.device.get_attr_u64(uapi.KVM_DEV_ARM_VGIC_GRP_ADDR,
                                        uapi.KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION, index)
        _, base, count = decode_redist_region_attr(word)
        return base, count
