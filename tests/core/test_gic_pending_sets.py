"""The GIC's per-CPU pending sets: the IRQ line and the highest pending interrupt look at
pending interrupts only, and always agree with a scan of every interrupt.

The reference below is the model's previous definition (every private interrupt, then
every SPI routed to the CPU, lowest INTID first among equal priorities); random
sequences of what a guest and the devices do must never make the two disagree.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vcpuhp import SmpConfig, Topology
from vcpuhp.gic import IDLE_PRIORITY, NUM_IRQS, SPURIOUS, Gicv3
from vcpuhp.memmap import GICD, GICR_FRAME_SIZE

CPUS = 3
GICD_ISENABLER, GICD_ICENABLER, GICD_ISPENDR, GICD_ICPENDR = 0x100, 0x180, 0x200, 0x280
GICD_IPRIORITYR, GICD_IROUTER = 0x400, 0x6000


def _gic() -> Gicv3:
    gic = Gicv3(Topology(SmpConfig.parse(f"cpus={CPUS},maxcpus={CPUS}")).slots)
    for index in range(CPUS):
        gic.set_accessible(index, True)
    return gic


def reference_highest_pending(gic: Gicv3, index: int) -> tuple[int, int]:
    cpu = gic.cpus[index]
    best = (SPURIOUS, IDLE_PRIORITY)
    if not cpu.accessible or not gic.ctlr & 0x2:
        return best
    for intid, irq in enumerate(cpu.private):
        if irq.pending and irq.enabled and not irq.active and irq.priority < best[1]:
            best = (intid, irq.priority)
    for spi, irq in enumerate(gic.spis):
        if (irq.pending and irq.enabled and not irq.active and irq.priority < best[1]
                and gic._spi_target(spi) == index):
            best = (spi + 32, irq.priority)
    return best


def reference_line(gic: Gicv3, index: int) -> bool:
    cpu = gic.cpus[index]
    intid, priority = reference_highest_pending(gic, index)
    return (cpu.igrpen1 and intid != SPURIOUS and priority < cpu.pmr
            and priority < cpu.running_priority)


SPIS = st.integers(0, NUM_IRQS - 33)
CPU = st.integers(0, CPUS - 1)
PRIORITY = st.sampled_from([0x00, 0x40, 0x80, 0xA0, 0xF0])
ACTIONS = st.one_of(
    st.tuples(st.just("spi"), SPIS, st.booleans()),
    st.tuples(st.just("ppi"), CPU, st.integers(16, 31), st.booleans()),
    st.tuples(st.just("enable"), SPIS, st.booleans()),
    st.tuples(st.just("pend"), SPIS, st.booleans()),
    st.tuples(st.just("priority"), SPIS, PRIORITY),
    st.tuples(st.just("route"), SPIS, CPU),
    st.tuples(st.just("private"), CPU, st.integers(0, 31), st.booleans(), PRIORITY),
    st.tuples(st.just("sgi"), CPU, st.integers(0, 15), st.integers(1, (1 << CPUS) - 1)),
    st.tuples(st.just("ack"), CPU),
    st.tuples(st.just("eoi"), CPU),
    st.tuples(st.just("pmr"), CPU, PRIORITY),
    st.tuples(st.just("unplug"), CPU),
    st.tuples(st.just("plug"), CPU),
    st.tuples(st.just("reset_cpu"), CPU),
    st.tuples(st.just("reset"),),
)


def _apply(gic: Gicv3, action: tuple[object, ...]) -> None:
    name, *args = action
    if name == "spi":
        spi, level = args
        gic.set_spi(int(spi), bool(level))
    elif name == "ppi":
        index, intid, level = args
        gic.set_ppi(int(index), int(intid), bool(level))
    elif name in ("enable", "pend"):
        spi, on = args
        intid = int(spi) + 32
        base = {("enable", True): GICD_ISENABLER, ("enable", False): GICD_ICENABLER,
                ("pend", True): GICD_ISPENDR, ("pend", False): GICD_ICPENDR}[(name, bool(on))]
        gic.mmio_write(GICD.base + base + 4 * (intid // 32), 4, 1 << (intid % 32))
    elif name == "priority":
        spi, priority = args
        gic.mmio_write(GICD.base + GICD_IPRIORITYR + int(spi) + 32, 1, int(priority))
    elif name == "route":
        spi, index = args
        arch_id = gic.cpus[int(index)].slot.arch_id
        gic.mmio_write(GICD.base + GICD_IROUTER + 8 * (int(spi) + 32), 4, arch_id & 0xFFFFFF)
    elif name == "private":
        index, intid, on, priority = args
        sgi_base = gic.cpus[int(index)].rd_base + GICR_FRAME_SIZE
        if not gic.cpus[int(index)].accessible:
            return
        bit = 1 << int(intid)
        gic.mmio_write(sgi_base + (GICD_ISENABLER if on else GICD_ICENABLER), 4, bit)
        gic.mmio_write(sgi_base + (GICD_ISPENDR if on else GICD_ICPENDR), 4, bit)
        gic.mmio_write(sgi_base + GICD_IPRIORITYR + int(intid), 1, int(priority))
    elif name == "sgi":
        index, intid, targets = args
        if gic.cpus[int(index)].accessible:
            gic.sysreg_write(int(index), "ICC_SGI1R_EL1", (int(intid) << 24) | int(targets))
    elif name in ("ack", "eoi", "pmr"):
        index = int(args[0])  # type: ignore[call-overload]
        cpu = gic.cpus[index]
        if not cpu.accessible:
            return
        if name == "ack":
            gic.sysreg_read(index, "ICC_IAR1_EL1")
        elif name == "eoi" and cpu.active_stack:
            gic.sysreg_write(index, "ICC_EOIR1_EL1", cpu.active_stack[-1][0])
        elif name == "pmr":
            gic.sysreg_write(index, "ICC_PMR_EL1", int(args[1]))  # type: ignore[call-overload]
    elif name in ("plug", "unplug"):
        gic.set_accessible(int(args[0]), name == "plug")  # type: ignore[call-overload]
    elif name == "reset_cpu":
        gic.reset_cpu_interface(int(args[0]))  # type: ignore[call-overload]
    else:
        gic.reset()


def _enable_delivery(gic: Gicv3) -> None:
    gic.mmio_write(GICD.base, 4, 0x12)  # ARE_NS | EnableGrp1NS
    for index in range(CPUS):
        gic.sysreg_write(index, "ICC_PMR_EL1", 0xF0)
        gic.sysreg_write(index, "ICC_IGRPEN1_EL1", 1)


@settings(max_examples=150)
@given(st.lists(ACTIONS, max_size=60))
def test_the_line_and_the_highest_pending_interrupt_match_a_full_scan(
    actions: list[tuple[object, ...]],
) -> None:
    gic = _gic()
    _enable_delivery(gic)
    for action in actions:
        _apply(gic, action)
        for index in range(CPUS):
            assert gic._highest_pending(gic.cpus[index]) == reference_highest_pending(gic, index)
            assert gic.irq_pending(index) == reference_line(gic, index)
        assert gic.pending_spis == {n for n, irq in enumerate(gic.spis) if irq.pending}
        for cpu in gic.cpus:
            assert cpu.pending_private == {n for n, irq in enumerate(cpu.private) if irq.pending}


def test_only_pending_interrupts_are_looked_at() -> None:
    gic = _gic()
    _enable_delivery(gic)
    assert gic.pending_spis == set() and gic.cpus[0].pending_private == set()
    gic.set_spi(9)
    gic.set_ppi(1, 27)
    assert gic.pending_spis == {9}
    assert gic.cpus[1].pending_private == {27} and gic.cpus[0].pending_private == set()
    gic.set_ppi(1, 27, False)
    gic.reset()
    assert gic.pending_spis == set() and gic.cpus[1].pending_private == set()


def test_equal_priorities_go_to_the_lowest_intid() -> None:
    gic = _gic()
    _enable_delivery(gic)
    route = gic.cpus[0].slot.arch_id & 0xFFFFFF
    for spi in (40, 7):
        intid = spi + 32
        gic.mmio_write(GICD.base + GICD_IROUTER + 8 * intid, 4, route)
        gic.mmio_write(GICD.base + GICD_ISENABLER + 4 * (intid // 32), 4, 1 << (intid % 32))
        gic.set_spi(spi)
    assert gic.sysreg_read(0, "ICC_IAR1_EL1") == 7 + 32
    assert gic.sysreg_read(0, "ICC_HPPIR1_EL1") == 40 + 32  # pending, not yet taken
    assert not gic.irq_pending(0), "equal priority does not preempt the active one"
