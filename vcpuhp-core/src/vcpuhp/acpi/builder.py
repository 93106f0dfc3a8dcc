"""Build a machine's ACPI table set and lay it out in guest RAM.

Layout from ``base`` (``memmap.ACPI_TABLES_ADDR`` when booting): the RSDP
first (16-byte aligned), then the XSDT, the FADT, the DSDT and the tables the
XSDT lists, each 16-byte aligned. The RSDP, the XSDT and the FADT hold
addresses, so they are rebuilt whenever the set is laid out.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    from vcpuhp.description import MachineDescription
    from vcpuhp.memory import GuestMemory

TABLE_ALIGNMENT: Final = 16
ADDRESSED: Final = ("RSDP", "XSDT", "FACP")
"""The tables that hold other tables' addresses, rebuilt at every layout."""
_FIRST: Final = ("FACP", "DSDT")
"""Laid out right after the RSDP and the XSDT; the rest follow in insertion order."""
_NOT_IN_XSDT: Final = ("RSDP", "XSDT", "DSDT")
"""Not listed by the XSDT (the FADT points at the DSDT)."""


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


class AcpiTables:
    """A machine's ACPI tables, keyed by signature (the RSDP under ``"RSDP"``).

    :attr:`tables` always holds a complete, consistent set laid out at
    :attr:`base`, with each table's guest-physical address in
    :attr:`addresses`. A table may be replaced or added (keyed by its
    signature) before :meth:`place`, e.g. by a ``vcpuhp_acpi_tables_built``
    hook; :meth:`place` lays out whatever :attr:`tables` then holds, and the
    XSDT lists every table but the RSDP, the XSDT itself and the DSDT.
    """

    def __init__(self, tables: Mapping[str, bytes], base: int = memmap.ACPI_TABLES_ADDR) -> None:
        self.tables: dict[str, bytes] = dict(tables)
        self.addresses: dict[str, int] = {}
        self.base = base
        self._layout(base)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={len(data)}" for name, data in self.tables.items())
        return f"<AcpiTables at {self.base:#x}: {sizes}>"

    @property
    def size(self) -> int:
        """Bytes from :attr:`base` to the end of the last table."""
        return max(self.addresses[s] + len(self.tables[s]) for s in self.tables) - self.base

    def _layout(self, base: int) -> None:
        if base % RSDP_ALIGNMENT:
            raise ConfigError(f"ACPI tables base {base:#x} must be {RSDP_ALIGNMENT}-byte aligned")
        if "DSDT" not in self.tables:
            raise ConfigError("an ACPI table set needs a DSDT")
        fixed = {name: data for name, data in self.tables.items() if name not in ADDRESSED}
        listed = ["FACP", *(name for name in fixed if name not in _NOT_IN_XSDT)]
        order = ["RSDP", "XSDT", *_FIRST, *(name for name in fixed if name not in _FIRST)]
        sizes = {"RSDP": RSDP_SIZE, "XSDT": xsdt_size(len(listed)), "FACP": FADT_SIZE}
        sizes.update({name: len(data) for name, data in fixed.items()})
        addresses: dict[str, int] = {}
        cursor = base
        for name in order:
            addresses[name] = cursor
            end = cursor + sizes[name]
            cursor = _align(end, TABLE_ALIGNMENT)
        if end - base > memmap.ACPI_TABLES_MAX:
            raise ConfigError(
                f"ACPI tables need {end - base} bytes; at most {memmap.ACPI_TABLES_MAX} fit"
            )
        built = {
            "FACP": build_fadt(addresses["DSDT"]),
            "XSDT": build_xsdt([addresses[name] for name in listed]),
            "RSDP": build_rsdp(addresses["XSDT"]),
        }
        self.base = base
        self.addresses = addresses
        self.tables = {name: built.get(name) or fixed[name] for name in order}

    def blob(self) -> bytes:
        """The bytes from :attr:`base` to the end of the last table, gaps zeroed."""
        area = bytearray(self.size)
        for name, data in self.tables.items():
            offset = self.addresses[name] - self.base
            area[offset : offset + len(data)] = data
        return bytes(area)

    def place(self, memory: GuestMemory, base: int) -> int:
        """Lay the tables out from ``base``, write them into ``memory``; return the RSDP address.

        The area from ``base`` to the end of the last table is zeroed first.
        """
        self._layout(base)
        if not memory.contains(base, self.size):
            raise ConfigError(
                f"ACPI tables ({self.size} bytes at {base:#x}) do not fit in guest RAM"
            )
        memory.write(base, self.blob())
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


def build_tables(
    description: MachineDescription, base: int = memmap.ACPI_TABLES_ADDR
) -> AcpiTables:
    """Build the ACPI tables describing a machine, laid out at ``base``.

    A pure function of ``description``: the same description gives the same bytes.
    """
    topology = description.topology
    giccs = [
        GiccInfo(slot.index, slot.arch_id, topology.is_cold_booted(slot))
        for slot in topology.slots
    ]
    regions = [
        RedistributorRange(region.base, region.count * memmap.GICR_STRIDE)
        for region in description.redistributor_regions
    ]
    cpus = [
        CpuDeviceInfo(
            slot.index,
            gicc_entry(GiccInfo(slot.index, slot.arch_id, enabled=True)),
            description.is_ejectable(slot),
        )
        for slot in topology.slots
    ]
    system_bus = [
        uart_device(),
        *cpu_hotplug_aml(cpus),
        ged_device(),
        power_button_device(),
    ]
    tables = {
        "DSDT": build_dsdt(system_bus),
        "APIC": build_madt(giccs, regions),
        "GTDT": build_gtdt(),
        "SPCR": build_spcr(),
        "PPTT": build_pptt(topology),
    }
    return AcpiTables(tables, base)
