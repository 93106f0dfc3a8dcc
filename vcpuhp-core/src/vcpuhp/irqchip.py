"""The machine's interrupt controller: one small interface, two kinds of implementation.

Every machine has a GICv3 sized over its possible CPUs at construction and
never resized. Who implements it depends on the backend's
:attr:`~vcpuhp.backend.BackendCapabilities.in_kernel_irqchip` capability:

* ``False`` (null, tcg-unicorn): the userspace model
  :class:`vcpuhp.gic.Gicv3`, which answers the guest's distributor and
  redistributor MMIO and ``ICC_*`` system registers and tells the backend
  when a CPU's IRQ line changes;
* ``True`` (kvm): the backend's own controller (KVM's in-kernel vGICv3),
  made by :meth:`~vcpuhp.backend.AcceleratorBackend.create_irqchip`; the
  guest's GIC accesses never reach the machine.

The machine only uses what both have (:class:`InterruptController`): raise a
shared interrupt (the GED's and the UART's), wire or unwire a CPU's interface
on plug and unplug, reset, and the layout the ACPI tables describe.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from vcpuhp import memmap
from vcpuhp.gic_layout import RedistributorRegion


class InterruptController(ABC):
    """What the machine needs of its GICv3, whoever implements it."""

    regions: tuple[RedistributorRegion, ...]
    """The redistributor regions holding one redistributor per possible CPU."""

    distributor_base: int = memmap.GICD.base

    @abstractmethod
    def set_spi(self, spi: int, level: bool = True) -> None:
        """Drive shared peripheral interrupt ``spi`` (INTID 32 + ``spi``): raise or lower it."""

    @abstractmethod
    def set_accessible(self, index: int, accessible: bool) -> None:
        """Wire (plug) or unwire (unplug) CPU ``index``'s interface and private interrupts."""

    @abstractmethod
    def is_accessible(self, index: int) -> bool:
        """Whether CPU ``index``'s interface is wired (its CPU is plugged)."""

    @abstractmethod
    def reset_cpu_interface(self, index: int) -> None:
        """CPU ``index`` comes out of reset (PSCI ``CPU_ON``)."""

    @abstractmethod
    def reset(self) -> None:
        """System reset: registers back to reset values; layout and wiring stay."""

    def owns(self, addr: int) -> bool:
        """Whether the machine must route a guest access at ``addr`` here.

        ``False`` for an in-kernel controller: the kernel answers those itself.
        """
        return False

    def mmio_read(self, addr: int, size: int) -> int:
        """A guest read of a GIC register (only called where :meth:`owns` is true)."""
        raise NotImplementedError(f"{type(self).__name__} does not take MMIO")

    def mmio_write(self, addr: int, size: int, value: int) -> None:
        """A guest write of a GIC register (only called where :meth:`owns` is true)."""
        raise NotImplementedError(f"{type(self).__name__} does not take MMIO")

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """What the controller holds, for exact before/after comparisons."""

    def close(self) -> None:
        """Release host resources (machine shutdown)."""


__all__ = ["InterruptController", "RedistributorRegion"]
