"""The GICv3 model: sized over possible CPUs, GICR_TYPER, accessibility, delivery."""

from __future__ import annotations

from collections.abc import Callable

from vcpuhp import SmpConfig, Topology, VirtMachine
from vcpuhp.gic import GICR_TYPER, GICR_TYPER_LAST, Gicv3
from vcpuhp.memmap import GICR_REGION0, GICR_REGION_HIGH, GICR_STRIDE
from vcpuhp_null import GuestDriver

Booted = Callable[..., tuple[VirtMachine, GuestDriver]]


def _gic(maxcpus: int) -> Gicv3:
    return Gicv3(Topology(SmpConfig.parse(f"cpus=1,maxcpus={maxcpus}")).slots)


def test_123_redistributors_fit_region0_then_the_high_region() -> None:
    gic = _gic(512)
    assert [(r.base, r.count) for r in gic.regions] == [
        (GICR_REGION0.base, 123), (GICR_REGION_HIGH.base, 389)]
    assert gic.redistributor_base(122) == GICR_REGION0.base + 122 * GICR_STRIDE
    assert gic.redistributor_base(123) == GICR_REGION_HIGH.base
    lasts = [cpu.slot.index for cpu in gic.cpus if cpu.last]
    assert lasts == [122, 511]


def test_small_machines_use_region0_only() -> None:
    gic = _gic(6)
    assert len(gic.regions) == 1 and gic.regions[0].count == 6
    assert [c.last for c in gic.cpus] == [False] * 5 + [True]


def test_gicr_typer_carries_affinity_processor_number_and_last() -> None:
    gic = _gic(130)
    cpu = gic.cpus[122]
    typer = gic.mmio_read(cpu.rd_base + GICR_TYPER, 8)
    assert typer >> 32 == 0x0000_070A  # index 122 -> Aff1 7, Aff0 10
    assert (typer >> 8) & 0xFFFF == 122
    assert typer & GICR_TYPER_LAST
    low = gic.mmio_read(cpu.rd_base + GICR_TYPER, 4)
    high = gic.mmio_read(cpu.rd_base + GICR_TYPER + 4, 4)
    assert (high << 32) | low == typer
    assert not gic.mmio_read(gic.cpus[5].rd_base + GICR_TYPER, 4) & GICR_TYPER_LAST


def test_plug_toggles_accessibility(null_machine: Callable[..., VirtMachine]) -> None:
    machine = null_machine("cpus=2,maxcpus=4")
    assert [c.accessible for c in machine.gic.cpus] == [True, True, False, False]
    machine.device_add("max-arm-cpu", "c3", **{"core-id": 3})
    assert machine.gic.cpus[3].accessible


def test_ged_interrupt_reaches_the_boot_cpu_interface(
    booted: Booted,
) -> None:
    machine, driver = booted("cpus=1,maxcpus=2")
    assert not machine.gic.irq_pending(0)
    machine.device_add("max-arm-cpu", "c1", **{"core-id": 1})
    assert machine.gic.irq_pending(0)
    assert driver.take_interrupt() == 41
    assert not machine.gic.irq_pending(0), "active interrupt is not taken twice"
    assert machine.sysreg_read(0, "ICC_RPR_EL1") == 0x80
    driver.end_interrupt(41)
    assert machine.sysreg_read(0, "ICC_IAR1_EL1") == 1023


def test_masked_by_priority_mask(booted: Booted) -> None:
    machine, _ = booted("cpus=1,maxcpus=2")
    machine.sysreg_write(0, "ICC_PMR_EL1", 0x80)
    machine.device_add("max-arm-cpu", "c1", **{"core-id": 1})
    assert not machine.gic.irq_pending(0)
    machine.sysreg_write(0, "ICC_PMR_EL1", 0xF0)
    assert machine.gic.irq_pending(0)


def test_sgi_between_cpus(booted: Booted) -> None:
    machine, driver = booted("cpus=2")
    driver.init_gic(1)
    sgi_base = machine.gic.redistributor_base(1) + 0x10000
    machine.mmio_write(sgi_base + 0x100, 4, 1 << 3)  # enable SGI 3 on CPU 1
    machine.mmio_write(sgi_base + 0x80, 4, 1 << 3)
    machine.sysreg_write(0, "ICC_SGI1R_EL1", (3 << 24) | (1 << 1))  # SGI 3 to Aff0 1
    assert machine.sysreg_read(1, "ICC_IAR1_EL1") == 3


def test_system_reset_clears_an_active_interrupt(
    booted: Booted,
) -> None:
    """A reset inside the GED handler must not leave INTID 41 active forever."""
    machine, driver = booted("cpus=1,maxcpus=3")
    machine.device_add("max-arm-cpu", "c1", **{"core-id": 1})
    assert driver.take_interrupt() == 41
    assert machine.psci_call(0, 0x8400_0009) == 0  # SYSTEM_RESET inside the handler
    assert machine.gic.cpus[1].accessible, "plugged CPUs stay wired across reset"
    driver.boot()
    driver.read_ged()
    machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
    assert machine.gic.irq_pending(0)
    assert driver.take_interrupt() == 41


def test_sgi_frame_does_not_reach_the_distributors_spis(
    booted: Booted,
) -> None:
    machine, _ = booted("cpus=1,maxcpus=2")
    sgi_base = machine.gic.redistributor_base(0) + 0x10000
    machine.mmio_write(sgi_base + 0x184, 4, 1 << 9)  # ICENABLER1 does not exist there
    assert machine.gic.spis[9].enabled, "GED SPI 41 still enabled"
    assert machine.mmio_read(sgi_base + 0x104, 4) == 0


def test_running_priority_reads_0xff_when_idle(booted: Booted) -> None:
    machine, _ = booted("cpus=1")
    assert machine.sysreg_read(0, "ICC_RPR_EL1") == 0xFF


def test_eoimode_1_splits_priority_drop_and_deactivation(
    booted: Booted,
) -> None:
    machine, driver = booted("cpus=1,maxcpus=2")
    machine.sysreg_write(0, "ICC_CTLR_EL1", 0x2)
    machine.device_add("max-arm-cpu", "c1", **{"core-id": 1})
    assert driver.take_interrupt() == 41
    driver.end_interrupt(41)
    assert machine.sysreg_read(0, "ICC_RPR_EL1") == 0xFF, "priority dropped"
    assert machine.gic.spis[9].active, "still active until ICC_DIR_EL1"
    machine.sysreg_write(0, "ICC_DIR_EL1", 41)
    assert not machine.gic.spis[9].active


def test_unplugging_a_cpu_releases_the_spi_it_had_active(
    booted: Booted,
) -> None:
    machine, driver = booted("cpus=1,maxcpus=3")
    machine.device_add("max-arm-cpu", "c1", **{"core-id": 1})
    driver.handle_hotplug()
    route = machine.topology.slots[1].arch_id
    machine.mmio_write(0x0800_0000 + 0x6000 + 8 * 41, 4, route)  # GED SPI to CPU 1
    machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
    assert driver.take_interrupt(cpu=1) == 41
    machine.device_del("c1")
    assert driver.cpu_off(1) == 0
    driver.eject(1)
    assert not machine.gic.spis[9].active


def test_cpu_on_resets_the_cpu_interface(booted: Booted) -> None:
    machine, driver = booted("cpus=2")
    driver.init_gic(1)
    assert machine.sysreg_read(1, "ICC_PMR_EL1") == 0xF0
    assert driver.cpu_off(1) == 0
    assert driver.cpu_on(1) == 0
    assert machine.sysreg_read(1, "ICC_PMR_EL1") == 0
    assert machine.sysreg_read(1, "ICC_IGRPEN1_EL1") == 0
