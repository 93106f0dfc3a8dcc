"""Where the GICv3's redistributors live: a pure function of the number of possible CPUs.

Shared by both interrupt-controller implementations (the userspace model and
KVM's in-kernel vGICv3) and by the ACPI tables (MADT GICR structures), so the
guest, the model and the kernel can never disagree about an address.
"""

from __future__ import annotations

from dataclasses import dataclass

from vcpuhp import memmap
from vcpuhp.errors import ConfigError


@dataclass(frozen=True)
class RedistributorRegion:
    """A guest-physical region holding consecutive redistributors."""

    base: int
    size: int
    count: int
    """How many redistributors of this machine it holds."""

    @property
    def capacity(self) -> int:
        """How many redistributors fit."""
        return self.size // memmap.GICR_STRIDE


def layout_redistributors(possible: int) -> tuple[RedistributorRegion, ...]:
    """Spread ``possible`` redistributors over region 0 then the high region."""
    regions = []
    left = possible
    for region in (memmap.GICR_REGION0, memmap.GICR_REGION_HIGH):
        if left == 0:
            break
        count = min(left, region.size // memmap.GICR_STRIDE)
        regions.append(RedistributorRegion(region.base, region.size, count))
        left -= count
    if left:
        raise ConfigError(f"{possible} CPUs do not fit in the redistributor regions")
    return tuple(regions)


__all__ = ["RedistributorRegion", "layout_redistributors"]
