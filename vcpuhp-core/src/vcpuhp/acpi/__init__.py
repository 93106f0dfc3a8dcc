"""ACPI tables and AML describing a ``virt`` machine and its CPU hotplug.

:func:`build_tables` turns a :class:`~vcpuhp.description.MachineDescription` into an
:class:`AcpiTables` set (RSDP, XSDT, FADT, DSDT, MADT, GTDT, SPCR, PPTT) that
ACPICA accepts and that describes hotplug the way Linux >= 6.11 expects on
arm64: every possible CPU present, cold-booted ones enabled, the rest online
capable and enabled later through ``_STA``.
"""

from vcpuhp.acpi.builder import AcpiTables, build_tables

__all__ = ["AcpiTables", "build_tables"]
