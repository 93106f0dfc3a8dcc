"""Build a machine's ACPI table set and lay it out in guest RAM.

Layout from ``base`` (``memmap.ACPI_TABLES_ADDR`` when booting): the RSDP
first (16-byte aligned), then the XSDT, the FADT, the DSDT and the tables the
XSDT lists, each 16-byte aligned. The RSDP, the XSDT and the FADT hold
addresses, so they are (re)built whenever the set is laid out at a new base.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from vcpuhp import memmap
from vcpuhp.acpi.cpu_hotplug import CpuDeviceInfo, cpu_hotplug_aml
from vcpuhp.acpi.devices import ged_device, power_button_device, uart_device
from vcpuhp.acpi.tables import (
    GiccInfo,
    RedistributorRange,
    build_dsdt,
    build_fadt,
    build_gtdt,
    build_madt,
    build_pptt,
    build_rsdp,
    build_spcr,
    build_xsdt,
    gicc_entry,
)
from vcpuhp.acpi.tables.fadt import FADT_SIZE
from vcpuhp.acpi.tables.rsdp import RSDP_ALIGNMENT, RSDP_SIZE
from vcpuhp.acpi.tables.xsdt import xsdt_size
from vcpuhp.errors import ConfigError

if TYPE_CHECKING:
    from vcpuhp.machine import VirtMachine
    from vcpuhp.memory import GuestMemory

TABLE_ALIGNMENT: Final = 16
XSDT_TABLES: Final = ("FACP", "APIC", "GTDT", "SPCR", "PPTT")
"""Signatures the XSDT lists, in order (the DSDT is reached through the FADT)."""
_LAYOUT: Final = ("RSDP", "XSDT", "FACP", "DSDT", "APIC", "GTDT", "SPCR", "PPTT")


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


@dataclass
class AcpiTables:
    """A machine's ACPI tables, keyed by signature (the RSDP under ``"RSDP"``).

    ``tables`` always holds a complete, consistent set laid out at
    :attr:`base`; :meth:`place` lays it out again when given another base.
    """

    fixed: Mapping[str, bytes]
    """The tables whose contents do not depend on where they are placed."""
    base: int = memmap.ACPI_TABLES_ADDR
    tables: dict[str, bytes] = field(default_factory=dict)
    addresses: dict[str, int] = field(default_factory=dict)
    """Guest-physical address of each table at :attr:`base`."""

    def __post_init__(self) -> None:
        self._layout(self.base)

    @property
    def size(self) -> int:
        """Bytes from :attr:`base` to the end of the last table."""
        return max(self.addresses[s] + len(self.tables[s]) for s in self.tables) - self.base

    def _layout(self, base: int) -> None:
        if base % RSDP_ALIGNMENT:
            raise ConfigError(f"ACPI tables base {base:#x} must be {RSDP_ALIGNMENT}-byte aligned")
        sizes = {"RSDP": RSDP_SIZE, "XSDT": xsdt_size(len(XSDT_TABLES)), "FACP": FADT_SIZE}
        sizes.update({name: len(data) for name, data in self.fixed.items()})
        addresses: dict[str, int] = {}
        cursor = base
        for name in _LAYOUT:
            addresses[name] = cursor
            cursor = _align(cursor + sizes[name], TABLE_ALIGNMENT)
        total = addresses["PPTT"] + sizes["PPTT"] - base
        if total > memmap.ACPI_TABLES_MAX:
            raise ConfigError(
                f"ACPI tables need {total} bytes; at most {memmap.ACPI_TABLES_MAX} fit"
            )
        tables = dict(self.fixed)
        tables["FACP"] = build_fadt(addresses["DSDT"])
        tables["XSDT"] = build_xsdt([addresses[name] for name in XSDT_TABLES])
        tables["RSDP"] = build_rsdp(addresses["XSDT"])
        self.base = base
        self.addresses = addresses
        self.tables = {name: tables[name] for name in _LAYOUT}

    def place(self, memory: GuestMemory, base: int) -> int:
        """Write every table into ``memory`` from ``base``; return the RSDP address."""
        if base != self.base:
            self._layout(base)
        if not memory.contains(base, self.size):
            raise ConfigError(
                f"ACPI tables ({self.size} bytes at {base:#x}) do not fit in guest RAM"
            )
        memory.write(base, bytes(self.size))
        for name, data in self.tables.items():
            memory.write(self.addresses[name], data)
        return self.addresses["RSDP"]

    def dump(self, directory: Path) -> list[Path]:
        """Write one raw file per table, named as ``acpidump -b`` does (``apic.dat``...)."""
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name, data in self.tables.items():
            path = directory / f"{name.lower()}.dat"
            path.write_bytes(data)
            written.append(path)
        return written


def _gicc_infos(machine: VirtMachine) -> list[GiccInfo]:
    topology = machine.topology
    return [
        GiccInfo(slot.index, slot.arch_id, topology.is_cold_booted(slot))
        for slot in topology.slots
    ]


def _ejectable(machine: VirtMachine, index: int) -> bool:
    if index == 0:
        return False
    return index >= machine.config.smp.cpus or machine.config.allow_cold_unplug


def build_tables(machine: VirtMachine, base: int = memmap.ACPI_TABLES_ADDR) -> AcpiTables:
    """Build the ACPI tables describing ``machine`` (realized or not), laid out at ``base``."""
    giccs = _gicc_infos(machine)
    regions = [
        RedistributorRange(region.base, region.count * memmap.GICR_STRIDE)
        for region in machine.gic.regions
    ]
    cpus = [
        CpuDeviceInfo(
            gicc.index,
            gicc_entry(GiccInfo(gicc.index, gicc.mpidr, enabled=True)),
            _ejectable(machine, gicc.index),
        )
        for gicc in giccs
    ]
    system_bus = [
        uart_device(),
        *cpu_hotplug_aml(cpus),
        ged_device(),
        power_button_device(),
    ]
    fixed = {
        "DSDT": build_dsdt(system_bus),
        "APIC": build_madt(giccs, regions),
        "GTDT": build_gtdt(),
        "SPCR": build_spcr(),
        "PPTT": build_pptt(machine.topology),
    }
    return AcpiTables(fixed, base)
