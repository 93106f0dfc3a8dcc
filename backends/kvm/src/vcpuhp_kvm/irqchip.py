"""The machine's interrupt controller under kvm: KVM's in-kernel vGICv3.

:class:`KvmInterruptController` is what :meth:`KvmBackend.create_irqchip
<vcpuhp_kvm.backend.KvmBackend.create_irqchip>` gives the machine. It is laid
out over the machine's redistributor regions when the machine is built and
bound to the VM's vGIC once every vCPU exists (``vcpus_created``). The guest's
distributor, redistributor and ``ICC_*`` accesses never leave the kernel;
what the machine drives is its devices' shared interrupts, through
``KVM_IRQ_LINE``.

Two kinds of line, as the machine's ACPI tables declare them:

* **edge** (the GED, SPI 9: ``_CRS`` says edge-triggered): every
  :meth:`~KvmInterruptController.set_spi` with ``level=True`` is one event,
  sent as a pulse (line high, then low) so that the next event raises it
  again whatever the vGIC's trigger configuration (QEMU pulses its GED too);
  ``level=False`` does nothing.
* **level** (every other SPI; the PL011's SPI 1): the line follows the
  level given; a repeated level is not sent again, so a device that keeps its
  line high does not re-trigger an edge-configured SPI.

KVM resets every SPI edge-triggered; a guest that follows the tables makes
the level ones level-sensitive (``GICD_ICFGR``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

from vcpuhp import memmap
from vcpuhp.errors import StateError
from vcpuhp.gic import NUM_IRQS
from vcpuhp.gic_layout import RedistributorRegion
from vcpuhp.irqchip import InterruptController

EDGE_SPIS: Final = frozenset({memmap.ACPI_GED_SPI})
"""SPIs whose device signals events, not levels (the GED's ``_CRS`` declares it edge)."""
SPI_COUNT: Final = NUM_IRQS - 32
"""SPIs of the vGIC (``KVM_DEV_ARM_VGIC_GRP_NR_IRQS`` is :data:`vcpuhp.gic.NUM_IRQS`)."""


class SpiLines(Protocol):
    """Where the lines go: :meth:`vcpuhp_kvm.vm.Vm.set_spi` (``KVM_IRQ_LINE``, by INTID)."""

    def set_spi(self, intid: int, level: bool) -> None: ...


class KvmInterruptController(InterruptController):
    """The in-kernel vGICv3 as the machine sees it: shared interrupt lines and CPU wiring.

    Thread-safe: devices raise lines from the machine (under its lock) and from
    vCPU threads; each ``KVM_IRQ_LINE`` is made under the controller's own lock
    so the order of level changes is kept.
    """

    def __init__(
        self,
        regions: Iterable[RedistributorRegion],
        edge_spis: Iterable[int] = EDGE_SPIS,
        distributor_base: int = memmap.GICD.base,
    ) -> None:
        self.regions = tuple(regions)
        self.distributor_base = distributor_base
        self.edge_spis = frozenset(edge_spis)
        self._lock = threading.Lock()
        self._lines: SpiLines | None = None
        self._on_reset: Callable[[], None] | None = None
        self._high: set[int] = set()
        """Level lines that are high now."""
        self._accessible: set[int] = set()
        self.edges_sent = 0
        """Events sent on edge lines (pulses), for statistics."""

    @property
    def bound(self) -> bool:
        """Whether the vGIC exists and lines reach it."""
        return self._lines is not None

    def bind(self, lines: SpiLines, on_reset: Callable[[], None] | None = None) -> None:
        """Connect to the VM once its vGIC is initialised (every vCPU exists).

        ``on_reset`` resets the vGIC's own state on a system reset (the backend's:
        it knows which vCPUs ran and stops them first).
        """
        with self._lock:
            self._lines = lines
            self._on_reset = on_reset

    def close(self) -> None:
        """Disconnect (machine shutdown): the VM is gone, no line can change any more."""
        with self._lock:
            self._lines = None
            self._on_reset = None
            self._high.clear()

    def set_spi(self, spi: int, level: bool = True) -> None:
        """Raise or lower shared peripheral interrupt ``spi`` (INTID 32 + ``spi``).

        An edge SPI sends one pulse per raise; a level SPI sends each change of
        level. :class:`~vcpuhp.errors.StateError` before the vGIC exists (the
        machine is not realized) or after shutdown.
        """
        if not 0 <= spi < SPI_COUNT:
            raise ValueError(f"SPI {spi} is out of range 0-{SPI_COUNT - 1}")
        intid = memmap.spi_intid(spi)
        with self._lock:
            lines = self._lines
            if lines is None:
                raise StateError(
                    f"SPI {spi} cannot be driven: the in-kernel vGIC does not exist (the "
                    "machine is not realized, or was shut down)"
                )
            if spi in self.edge_spis:
                if level:
                    lines.set_spi(intid, True)
                    lines.set_spi(intid, False)
                    self.edges_sent += 1
                return
            if level == (spi in self._high):
                return
            lines.set_spi(intid, level)
            if level:
                self._high.add(spi)
            else:
                self._high.discard(spi)

    def set_accessible(self, index: int, accessible: bool) -> None:
        """Record that CPU ``index`` is plugged (``True``) or unplugged.

        Nothing reaches KVM: the vGIC was given a redistributor for every
        possible CPU before ``CTRL_INIT`` and keeps them all. A parked vCPU
        never runs, so its redistributor stays asleep and its CPU interface
        takes nothing; on plug the vCPU is reset and the guest wakes its
        redistributor itself when it brings the CPU up.
        """
        with self._lock:
            if accessible:
                self._accessible.add(index)
            else:
                self._accessible.discard(index)

    def is_accessible(self, index: int) -> bool:
        """Whether CPU ``index`` is plugged."""
        with self._lock:
            return index in self._accessible

    def reset_cpu_interface(self, index: int) -> None:
        """PSCI ``CPU_ON``: nothing to do here.

        The backend resets the vCPU with ``KVM_ARM_VCPU_INIT`` before it runs,
        and the CPU interface registers are the vCPU's own state in KVM.
        """

    def reset(self) -> None:
        """System reset: the level lines the machine holds high go low, then the vGIC's
        pending and active states and CPU interfaces are cleared (``on_reset``).

        An interrupt the guest was handling when it reset would otherwise stay
        active in KVM and never be delivered again. Groups, priorities,
        trigger configuration and routing stay as programmed: a booting guest
        programs them afresh.
        """
        with self._lock:
            lines, on_reset = self._lines, self._on_reset
            for spi in sorted(self._high):
                if lines is not None:
                    lines.set_spi(memmap.spi_intid(spi), False)
            self._high.clear()
        if on_reset is not None:
            on_reset()

    def state(self) -> dict[str, Any]:
        """Layout, wiring and the level lines held high (KVM's own state is not read)."""
        with self._lock:
            return {
                "kind": "kvm-vgic-v3",
                "distributor": self.distributor_base,
                "redistributor_regions": [[r.base, r.count] for r in self.regions],
                "nr_irqs": NUM_IRQS,
                "bound": self._lines is not None,
                "accessible": sorted(self._accessible),
                "lines_high": sorted(self._high),
            }


__all__ = ["EDGE_SPIS", "SPI_COUNT", "KvmInterruptController", "SpiLines"]
