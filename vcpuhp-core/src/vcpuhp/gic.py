"""A GICv3 model sized over every possible CPU at machine realize.

It has a distributor, one redistributor (RD_base + SGI_base frames) per
possible CPU laid out across the ``virt`` redistributor regions, and one CPU
interface (the ``ICC_*_EL1`` system registers) per CPU. The layout is fixed at
construction and never resized; hotplug only toggles whether a CPU's interface
is *accessible* (QEMU RFC: ``gicv3_cpuif_is_accessible``).

The model covers one security state (``GICD_CTLR.DS`` = 1), group 1
interrupts, no LPIs. Executing backends route guest MMIO to :meth:`Gicv3.mmio_read`
/ :meth:`Gicv3.mmio_write` and system register accesses to
:meth:`Gicv3.sysreg_read` / :meth:`Gicv3.sysreg_write`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Final

from vcpuhp import memmap
from vcpuhp.errors import GicAccessError, GuestError
from vcpuhp.gic_layout import layout_redistributors
from vcpuhp.irqchip import InterruptController
from vcpuhp.topology import CpuSlot, affinity_fields

NUM_IRQS: Final = 288
"""INTIDs 0-287: 16 SGIs, 16 PPIs, 256 SPIs (QEMU virt's ``NUM_IRQS``)."""
SPURIOUS: Final = 1023
IDLE_PRIORITY: Final = 0x100

GICD_CTLR, GICD_TYPER, GICD_IIDR = 0x0000, 0x0004, 0x0008
GICD_IGROUPR, GICD_ISENABLER, GICD_ICENABLER = 0x0080, 0x0100, 0x0180
GICD_ISPENDR, GICD_ICPENDR, GICD_ISACTIVER, GICD_ICACTIVER = 0x0200, 0x0280, 0x0300, 0x0380
GICD_IPRIORITYR, GICD_ICFGR, GICD_IROUTER = 0x0400, 0x0C00, 0x6000
GIC_PIDR2 = 0xFFE8
GICR_CTLR, GICR_IIDR, GICR_TYPER, GICR_WAKER = 0x0000, 0x0004, 0x0008, 0x0014
GICR_TYPER_LAST: Final = 1 << 4
_IIDR_ARM: Final = 0x0000_043B
_PIDR2_GICV3: Final = 0x3B

#: ``(op0, op1, CRn, CRm, op2)`` of the GICv3 CPU interface registers.
ICC_SYSREGS: Final[dict[tuple[int, int, int, int, int], str]] = {
    (3, 0, 4, 6, 0): "ICC_PMR_EL1",
    (3, 0, 12, 8, 0): "ICC_IAR0_EL1",
    (3, 0, 12, 8, 1): "ICC_EOIR0_EL1",
    (3, 0, 12, 8, 2): "ICC_HPPIR0_EL1",
    (3, 0, 12, 8, 3): "ICC_BPR0_EL1",
    (3, 0, 12, 8, 4): "ICC_AP0R0_EL1",
    (3, 0, 12, 9, 0): "ICC_AP1R0_EL1",
    (3, 0, 12, 11, 1): "ICC_DIR_EL1",
    (3, 0, 12, 11, 3): "ICC_RPR_EL1",
    (3, 0, 12, 11, 5): "ICC_SGI1R_EL1",
    (3, 0, 12, 11, 6): "ICC_ASGI1R_EL1",
    (3, 0, 12, 11, 7): "ICC_SGI0R_EL1",
    (3, 0, 12, 12, 0): "ICC_IAR1_EL1",
    (3, 0, 12, 12, 1): "ICC_EOIR1_EL1",
    (3, 0, 12, 12, 2): "ICC_HPPIR1_EL1",
    (3, 0, 12, 12, 3): "ICC_BPR1_EL1",
    (3, 0, 12, 12, 4): "ICC_CTLR_EL1",
    (3, 0, 12, 12, 5): "ICC_SRE_EL1",
    (3, 0, 12, 12, 6): "ICC_IGRPEN0_EL1",
    (3, 0, 12, 12, 7): "ICC_IGRPEN1_EL1",
}
ICC_REGISTER_NAMES: Final = frozenset(ICC_SYSREGS.values())


class _Irq:
    """One interrupt's state. Its ``pending`` bit is mirrored in ``pending_set`` (the
    owning CPU interface's or the distributor's set of pending INTIDs), so that finding
    the highest pending interrupt looks at pending interrupts only."""

    __slots__ = ("_pending", "_pending_set", "active", "edge", "enabled", "group1", "key",
                 "priority")

    def __init__(self, edge: bool, pending_set: set[int] | None = None, key: int = 0) -> None:
        self.enabled = False
        self._pending = False
        self._pending_set: set[int] = pending_set if pending_set is not None else set()
        self.key = key
        self.active = False
        self.group1 = False
        self.priority = 0
        self.edge = edge

    @property
    def pending(self) -> bool:
        """The pending bit."""
        return self._pending

    @pending.setter
    def pending(self, value: bool) -> None:
        self._pending = value
        if value:
            self._pending_set.add(self.key)
        else:
            self._pending_set.discard(self.key)

    def state(self) -> tuple[bool, ...] | tuple[Any, ...]:
        return (self.enabled, self.pending, self.active, self.group1, self.priority, self.edge)


class CpuInterface:
    """The GIC state private to one CPU: banked SGIs/PPIs, redistributor, ``ICC_*``."""

    def __init__(self, slot: CpuSlot, rd_base: int, last: bool) -> None:
        self.slot = slot
        self.rd_base = rd_base
        self.last = last
        self.accessible = False
        self.pending_private: set[int] = set()
        """INTIDs (0-31) of this CPU's pending SGIs and PPIs."""
        self.private = [_Irq(intid < 16, self.pending_private, intid) for intid in range(32)]
        self.waker_sleep = True
        self.pmr = 0
        self.bpr1 = 0
        self.igrpen1 = False
        self.igrpen0 = False
        self.ctlr = 0
        self.sre = 0x7
        self.active_stack: list[tuple[int, int]] = []
        """``(intid, priority)`` of acknowledged, not yet EOId interrupts."""

    @property
    def typer(self) -> int:
        """``GICR_TYPER``: affinity, processor number and ``Last``."""
        aff3, aff2, aff1, aff0 = affinity_fields(self.slot.arch_id)
        affinity = (aff3 << 24) | (aff2 << 16) | (aff1 << 8) | aff0
        value = (affinity << 32) | ((self.slot.index & 0xFFFF) << 8)
        return value | (GICR_TYPER_LAST if self.last else 0)

    @property
    def running_priority(self) -> int:
        return self.active_stack[-1][1] if self.active_stack else IDLE_PRIORITY

    def state(self) -> dict[str, Any]:
        return {
            "accessible": self.accessible,
            "private": [irq.state() for irq in self.private],
            "waker_sleep": self.waker_sleep,
            "icc": (self.pmr, self.bpr1, self.igrpen1, self.igrpen0, self.ctlr, self.sre),
            "active": list(self.active_stack),
        }


InterruptSignal = Callable[[int], None]
"""Called with a CPU index whenever that CPU may have a new deliverable interrupt."""
GuestErrorReport = Callable[[str], None]


class Gicv3(InterruptController):
    """The userspace GICv3 model: the machine's interrupt controller on backends
    without an in-kernel one (see :mod:`vcpuhp.irqchip`)."""

    def __init__(
        self,
        slots: Sequence[CpuSlot],
        signal: InterruptSignal | None = None,
        report: GuestErrorReport | None = None,
    ) -> None:
        self.regions = layout_redistributors(len(slots))
        self.cpus: list[CpuInterface] = []
        index = 0
        for region in self.regions:
            for n in range(region.count):
                base = region.base + n * memmap.GICR_STRIDE
                self.cpus.append(CpuInterface(slots[index], base, last=n == region.count - 1))
                index += 1
        self._by_affinity = {cpu.slot.arch_id: cpu for cpu in self.cpus}
        self.pending_spis: set[int] = set()
        """SPI numbers (INTID - 32) of the pending shared interrupts."""
        self.spis = self._fresh_spis()
        self.irouter = [0] * (NUM_IRQS - 32)
        self.ctlr = 0
        self.lock = threading.RLock()
        self._signal = signal or (lambda _cpu: None)
        self._report_now = report or (lambda _msg: None)
        self._reports: list[str] = []

    def _fresh_spis(self) -> list[_Irq]:
        self.pending_spis.clear()
        return [_Irq(False, self.pending_spis, spi) for spi in range(NUM_IRQS - 32)]

    def _report(self, message: str) -> None:
        """Queue a guest-error report; delivered by :meth:`_flush_reports` outside the lock."""
        self._reports.append(message)

    def _flush_reports(self) -> None:
        with self.lock:
            reports, self._reports = self._reports, []
        for message in reports:
            self._report_now(message)

    # -- layout ---------------------------------------------------------------

    def redistributor_base(self, index: int) -> int:
        """Guest-physical RD_base of CPU ``index``'s redistributor."""
        return self.cpus[index].rd_base

    def owns(self, addr: int) -> bool:
        """Whether ``addr`` is in the distributor or a redistributor region."""
        if memmap.GICD.contains(addr):
            return True
        return any(r.base <= addr < r.base + r.size for r in self.regions)

    # -- hotplug ----------------------------------------------------------------

    def set_accessible(self, index: int, accessible: bool) -> None:
        """Wire (plug) or unwire (unplug) CPU ``index``'s interface and PPIs."""
        with self.lock:
            cpu = self.cpus[index]
            cpu.accessible = accessible
            if not accessible:
                for irq in cpu.private:
                    irq.pending = irq.active = False
                for intid, _priority in cpu.active_stack:
                    if intid >= 32:
                        self.spis[intid - 32].active = False
                cpu.active_stack.clear()
                cpu.igrpen1 = cpu.igrpen0 = False
                cpu.pmr = 0
                cpu.waker_sleep = True
        if accessible:
            self._signal(index)

    def is_accessible(self, index: int) -> bool:
        """Whether CPU ``index``'s interface is wired (its CPU is plugged)."""
        return self.cpus[index].accessible

    def reset_cpu_interface(self, index: int) -> None:
        """CPU ``index`` comes out of reset (PSCI ``CPU_ON``): its ``ICC_*`` state and
        banked interrupts return to reset values, and SPIs it had active are released."""
        with self.lock:
            cpu = self.cpus[index]
            for intid, _priority in cpu.active_stack:
                if intid >= 32:
                    self.spis[intid - 32].active = False
            fresh = CpuInterface(cpu.slot, cpu.rd_base, cpu.last)
            fresh.accessible = cpu.accessible
            self.cpus[index] = fresh
            self._by_affinity[cpu.slot.arch_id] = fresh

    def reset(self) -> None:
        """System reset: every register back to its reset value.

        The layout and each CPU's accessibility (whether it is plugged) stay;
        pending and active interrupts, priorities, routing and the CPU
        interfaces' state do not, so an interrupt that was active at reset
        cannot block delivery afterwards.
        """
        with self.lock:
            self.ctlr = 0
            self.spis = self._fresh_spis()
            self.irouter = [0] * len(self.irouter)
            for position, cpu in enumerate(self.cpus):
                fresh = CpuInterface(cpu.slot, cpu.rd_base, cpu.last)
                fresh.accessible = cpu.accessible
                self.cpus[position] = fresh
            self._by_affinity = {cpu.slot.arch_id: cpu for cpu in self.cpus}

    # -- interrupt lines ----------------------------------------------------------

    def set_spi(self, spi: int, level: bool = True) -> None:
        """Raise (edge / level high) shared peripheral interrupt ``spi``."""
        if not 0 <= spi < len(self.spis):
            raise ValueError(f"SPI {spi} is out of range 0-{len(self.spis) - 1}")
        with self.lock:
            irq = self.spis[spi]
            if level:
                irq.pending = True
            elif not irq.edge:
                irq.pending = False
            target = self._spi_target(spi)
        if level and target is not None:
            self._signal(target)

    def set_ppi(self, index: int, intid: int, level: bool = True) -> None:
        """Raise a private peripheral interrupt (16-31) on CPU ``index``."""
        if not 16 <= intid < 32:
            raise ValueError(f"INTID {intid} is not a PPI (16-31)")
        with self.lock:
            self.cpus[index].private[intid].pending = level
        if level:
            self._signal(index)

    def _spi_target(self, spi: int) -> int | None:
        route = self.irouter[spi]
        if route & (1 << 31):
            for cpu in self.cpus:
                if cpu.accessible and cpu.igrpen1:
                    return cpu.slot.index
            return None
        affinity = (route & 0xFFFFFF) | ((route >> 32) & 0xFF) << 32
        target = self._by_affinity.get(affinity)
        return target.slot.index if target is not None else None

    def _irq(self, cpu: CpuInterface, intid: int) -> _Irq:
        return cpu.private[intid] if intid < 32 else self.spis[intid - 32]

    def _highest_pending(self, cpu: CpuInterface) -> tuple[int, int]:
        """``(INTID, priority)`` of the highest-priority pending interrupt ``cpu`` could take;
        the lowest INTID wins a tie. Only pending interrupts are looked at."""
        best = (SPURIOUS, IDLE_PRIORITY)
        if not cpu.accessible or not self.ctlr & 0x2:
            return best
        for intid in sorted(cpu.pending_private):
            irq = cpu.private[intid]
            if irq.enabled and not irq.active and irq.priority < best[1]:
                best = (intid, irq.priority)
        for spi in sorted(self.pending_spis):
            irq = self.spis[spi]
            if (
                irq.enabled and not irq.active and irq.priority < best[1]
                and self._spi_target(spi) == cpu.slot.index
            ):
                best = (spi + 32, irq.priority)
        return best

    def irq_pending(self, index: int) -> bool:
        """Whether CPU ``index`` has an interrupt it would take now (the IRQ line)."""
        with self.lock:
            cpu = self.cpus[index]
            if not cpu.igrpen1:
                return False
            intid, priority = self._highest_pending(cpu)
            return intid != SPURIOUS and priority < cpu.pmr and priority < cpu.running_priority

    # -- CPU interface (system registers) ---------------------------------------------

    def _cpu(self, index: int) -> CpuInterface:
        cpu = self.cpus[index]
        if not cpu.accessible:
            raise GicAccessError(
                f"GIC CPU interface of CPU {index} is not accessible: the CPU is not plugged"
            )
        return cpu

    def sysreg_read(self, index: int, name: str) -> int:
        """Read ``ICC_*_EL1`` register ``name`` on CPU ``index``."""
        with self.lock:
            cpu = self._cpu(index)
            if name == "ICC_IAR1_EL1":
                return self._acknowledge(cpu)
            if name == "ICC_HPPIR1_EL1":
                return self._highest_pending(cpu)[0]
            if name in ("ICC_IAR0_EL1", "ICC_HPPIR0_EL1"):
                return SPURIOUS
            simple = {
                "ICC_PMR_EL1": cpu.pmr,
                "ICC_BPR1_EL1": cpu.bpr1,
                "ICC_BPR0_EL1": 0,
                "ICC_CTLR_EL1": cpu.ctlr | (3 << 8),  # PRIbits: 4 priority bits
                "ICC_SRE_EL1": cpu.sre,
                "ICC_IGRPEN1_EL1": int(cpu.igrpen1),
                "ICC_IGRPEN0_EL1": int(cpu.igrpen0),
                "ICC_RPR_EL1": min(cpu.running_priority, 0xFF),
                "ICC_AP1R0_EL1": 0,
                "ICC_AP0R0_EL1": 0,
            }
            if name in simple:
                return simple[name]
            raise GuestError(f"{name} is write-only or unknown; readable: {sorted(simple)}")

    def sysreg_write(self, index: int, name: str, value: int) -> None:
        """Write ``ICC_*_EL1`` register ``name`` on CPU ``index``."""
        signal_to: list[int] = []
        with self.lock:
            cpu = self._cpu(index)
            if name == "ICC_PMR_EL1":
                cpu.pmr = value & 0xFF
                signal_to.append(index)
            elif name == "ICC_BPR1_EL1":
                cpu.bpr1 = value & 0x7
            elif name == "ICC_IGRPEN1_EL1":
                cpu.igrpen1 = bool(value & 1)
                signal_to.append(index)
            elif name == "ICC_IGRPEN0_EL1":
                cpu.igrpen0 = bool(value & 1)
            elif name == "ICC_CTLR_EL1":
                cpu.ctlr = value & 0x3
            elif name == "ICC_SRE_EL1":
                cpu.sre = 0x7
            elif name == "ICC_EOIR1_EL1":
                self._end_of_interrupt(cpu, value & 0xFFFFFF, deactivate=not cpu.ctlr & 0x2)
                signal_to.append(index)
            elif name == "ICC_DIR_EL1":
                self._deactivate(cpu, value & 0xFFFFFF)
                signal_to.append(index)
            elif name in ("ICC_SGI1R_EL1", "ICC_ASGI1R_EL1"):
                signal_to.extend(self._generate_sgi(cpu, value))
            elif name in ("ICC_EOIR0_EL1", "ICC_SGI0R_EL1", "ICC_BPR0_EL1",
                          "ICC_AP0R0_EL1", "ICC_AP1R0_EL1"):
                pass
            else:
                raise GuestError(f"{name} is read-only or unknown")
        self._flush_reports()
        for target in signal_to:
            self._signal(target)

    def _acknowledge(self, cpu: CpuInterface) -> int:
        if not cpu.igrpen1:
            return SPURIOUS
        intid, priority = self._highest_pending(cpu)
        if intid == SPURIOUS or priority >= cpu.pmr or priority >= cpu.running_priority:
            return SPURIOUS
        irq = self._irq(cpu, intid)
        irq.pending = False
        irq.active = True
        cpu.active_stack.append((intid, priority))
        return intid

    def _end_of_interrupt(self, cpu: CpuInterface, intid: int, deactivate: bool) -> None:
        """Priority drop, plus deactivation unless ``ICC_CTLR_EL1.EOImode`` is 1."""
        for position in range(len(cpu.active_stack) - 1, -1, -1):
            if cpu.active_stack[position][0] == intid:
                del cpu.active_stack[position]
                if deactivate and intid < NUM_IRQS:
                    self._irq(cpu, intid).active = False
                return
        self._report(f"CPU {cpu.slot.index} wrote EOI for INTID {intid}, which is not active")

    def _deactivate(self, cpu: CpuInterface, intid: int) -> None:
        """``ICC_DIR_EL1``: deactivate (only meaningful with EOImode 1)."""
        if not cpu.ctlr & 0x2:
            self._report(f"CPU {cpu.slot.index} wrote ICC_DIR_EL1 with EOImode 0: ignored")
            return
        if intid < NUM_IRQS and self._irq(cpu, intid).active:
            self._irq(cpu, intid).active = False
            return
        self._report(f"CPU {cpu.slot.index} deactivated INTID {intid}, which is not active")

    def _generate_sgi(self, source: CpuInterface, value: int) -> list[int]:
        intid = (value >> 24) & 0xF
        targets: list[int] = []
        if value & (1 << 40):
            candidates = [c for c in self.cpus if c is not source]
        else:
            aff1, aff2, aff3 = (value >> 16) & 0xFF, (value >> 32) & 0xFF, (value >> 48) & 0xFF
            range_selector = (value >> 44) & 0xF
            wanted = {
                (aff3 << 32) | (aff2 << 16) | (aff1 << 8) | (range_selector * 16 + bit)
                for bit in range(16) if value & (1 << bit)
            }
            candidates = [self._by_affinity[a] for a in sorted(wanted) if a in self._by_affinity]
        for cpu in candidates:
            if cpu.accessible:
                cpu.private[intid].pending = True
                targets.append(cpu.slot.index)
        return targets

    # -- MMIO --------------------------------------------------------------------------

    def mmio_read(self, addr: int, size: int) -> int:
        """A guest read of ``size`` bytes at ``addr`` in the distributor or a redistributor."""
        try:
            with self.lock:
                if memmap.GICD.contains(addr):
                    return self._dist_read(addr - memmap.GICD.base, size)
                cpu, frame, offset = self._locate(addr)
                return self._redist_read(cpu, frame, offset, size)
        finally:
            self._flush_reports()

    def mmio_write(self, addr: int, size: int, value: int) -> None:
        """A guest write of ``size`` bytes at ``addr``; bad writes are reported, not applied."""
        with self.lock:
            if memmap.GICD.contains(addr):
                self._dist_write(addr - memmap.GICD.base, size, value)
                targets = [c.slot.index for c in self.cpus if c.accessible]
            else:
                cpu, frame, offset = self._locate(addr)
                if not cpu.accessible:
                    self._report(
                        f"write to redistributor of CPU {cpu.slot.index} ignored: not plugged"
                    )
                    targets = []
                else:
                    self._redist_write(cpu, frame, offset, size, value)
                    targets = [cpu.slot.index]
        self._flush_reports()
        for target in targets:
            self._signal(target)

    def _locate(self, addr: int) -> tuple[CpuInterface, int, int]:
        for region in self.regions:
            if region.base <= addr < region.base + region.count * memmap.GICR_STRIDE:
                rel = addr - region.base
                n = rel // memmap.GICR_STRIDE
                index = sum(r.count for r in self.regions[: self.regions.index(region)]) + n
                within = rel % memmap.GICR_STRIDE
                frame, offset = divmod(within, memmap.GICR_FRAME_SIZE)
                return self.cpus[index], frame, offset
        raise GuestError(f"no redistributor at {addr:#x}")

    @staticmethod
    def _bits(offset: int, base: int) -> int:
        return (offset - base) * 8

    def _bitmap_irqs(self, cpu: CpuInterface | None, first_intid: int, width: int) -> list[_Irq]:
        irqs = []
        for intid in range(first_intid, first_intid + width):
            if intid < 32:
                irqs.append(cpu.private[intid] if cpu is not None else _Irq(False))
            elif intid < NUM_IRQS:
                irqs.append(self.spis[intid - 32])
        return irqs

    def _bitmap_read(self, irqs: list[_Irq], attr: str) -> int:
        return sum(1 << n for n, irq in enumerate(irqs) if getattr(irq, attr))

    def _bitmap_write(self, irqs: list[_Irq], attr: str, value: int, set_to: bool | None) -> None:
        for n, irq in enumerate(irqs):
            bit = bool(value >> n & 1)
            if set_to is None:
                setattr(irq, attr, bit)
            elif bit:
                setattr(irq, attr, set_to)

    _BITMAPS: Final = (
        (0x080, "group1", None),
        (0x100, "enabled", True),
        (0x180, "enabled", False),
        (0x200, "pending", True),
        (0x280, "pending", False),
        (0x300, "active", True),
        (0x380, "active", False),
    )

    def _banked_access(
        self, cpu: CpuInterface | None, offset: int, size: int, value: int | None
    ) -> int | None:
        """Shared bitmap / priority / config registers; ``None`` if ``offset`` is not one."""
        for base, attr, set_to in self._BITMAPS:
            if base <= offset < base + 0x80:
                first = (offset - base) * 8
                irqs = self._bitmap_irqs(cpu, first, size * 8)
                if (cpu is None) == (first < 32):
                    return 0  # SGI/PPI bits live in the redistributor, SPIs in the distributor
                if value is None:
                    return self._bitmap_read(irqs, attr)
                self._bitmap_write(irqs, attr, value, set_to)
                return 0
        if GICD_IPRIORITYR <= offset < GICD_IPRIORITYR + NUM_IRQS:
            first = offset - GICD_IPRIORITYR
            if (cpu is None) == (first < 32):
                return 0
            irqs = self._bitmap_irqs(cpu, first, size)
            if value is None:
                return sum(irq.priority << (8 * n) for n, irq in enumerate(irqs))
            for n, irq in enumerate(irqs):
                irq.priority = (value >> (8 * n)) & 0xF0
            return 0
        if GICD_ICFGR <= offset < GICD_ICFGR + NUM_IRQS // 4:
            first = (offset - GICD_ICFGR) * 4
            if (cpu is None) == (first < 32):
                return 0
            irqs = self._bitmap_irqs(cpu, first, size * 4)
            if value is None:
                return sum((2 if irq.edge else 0) << (2 * n) for n, irq in enumerate(irqs))
            for n, irq in enumerate(irqs):
                if first + n >= 16:
                    irq.edge = bool((value >> (2 * n + 1)) & 1)
            return 0
        return None

    def _dist_read(self, offset: int, size: int) -> int:
        if offset == GICD_CTLR:
            return self.ctlr | (1 << 6)
        if offset == GICD_TYPER:
            return (NUM_IRQS // 32 - 1) | (9 << 19) | ((min(len(self.cpus), 8) - 1) << 5)
        if offset == GICD_IIDR:
            return _IIDR_ARM
        if offset == GIC_PIDR2:
            return _PIDR2_GICV3
        if GICD_IROUTER + 0x100 <= offset < GICD_IROUTER + 8 * NUM_IRQS:
            spi = (offset - GICD_IROUTER) // 8 - 32
            value = self.irouter[spi]
            return value >> 32 if offset % 8 == 4 else value & ((1 << (8 * size)) - 1)
        banked = self._banked_access(None, offset, size, None)
        return banked if banked is not None else 0

    def _dist_write(self, offset: int, size: int, value: int) -> None:
        if offset == GICD_CTLR:
            self.ctlr = value & 0x13
            return
        if GICD_IROUTER + 0x100 <= offset < GICD_IROUTER + 8 * NUM_IRQS:
            spi = (offset - GICD_IROUTER) // 8 - 32
            if offset % 8 == 4:
                self.irouter[spi] = (self.irouter[spi] & 0xFFFF_FFFF) | ((value & 0xFF) << 32)
            elif size == 8:
                self.irouter[spi] = value & 0xFF_8000_0000 | value & 0x80FF_FFFF
            else:
                self.irouter[spi] = (self.irouter[spi] & ~0xFFFF_FFFF) | (value & 0x80FF_FFFF)
            return
        if self._banked_access(None, offset, size, value) is None:
            self._report(f"write of {value:#x} to unknown GICD offset {offset:#x} ignored")

    def _redist_read(self, cpu: CpuInterface, frame: int, offset: int, size: int) -> int:
        if frame == 0:
            if offset == GICR_TYPER:
                return cpu.typer & ((1 << (8 * size)) - 1)
            if offset == GICR_TYPER + 4:
                return cpu.typer >> 32
            if offset == GICR_IIDR:
                return _IIDR_ARM
            if offset == GIC_PIDR2:
                return _PIDR2_GICV3
            if offset == GICR_WAKER:
                return 0x6 if cpu.waker_sleep else 0
            return 0
        if not cpu.accessible:
            return 0
        banked = self._banked_access(cpu, offset, size, None)
        return banked if banked is not None else 0

    def _redist_write(
        self, cpu: CpuInterface, frame: int, offset: int, size: int, value: int
    ) -> None:
        if frame == 0:
            if offset == GICR_WAKER:
                cpu.waker_sleep = bool(value & 0x2)
            elif offset != GICR_CTLR:
                self._report(f"write to read-only GICR offset {offset:#x} ignored")
            return
        if self._banked_access(cpu, offset, size, value) is None:
            self._report(f"write of {value:#x} to unknown GICR SGI offset {offset:#x} ignored")

    # -- snapshots -----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """All mutable state, for comparisons."""
        with self.lock:
            return {
                "ctlr": self.ctlr,
                "spis": [irq.state() for irq in self.spis],
                "irouter": list(self.irouter),
                "cpus": [cpu.state() for cpu in self.cpus],
            }
