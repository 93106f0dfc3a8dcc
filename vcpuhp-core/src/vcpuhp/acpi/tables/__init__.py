"""One module per ACPI table; each ``build_*`` function returns the table's bytes."""

from vcpuhp.acpi.tables.dsdt import build_dsdt
from vcpuhp.acpi.tables.fadt import build_fadt
from vcpuhp.acpi.tables.gtdt import build_gtdt
from vcpuhp.acpi.tables.madt import GiccInfo, RedistributorRange, build_madt, gicc_entry
from vcpuhp.acpi.tables.pptt import build_pptt
from vcpuhp.acpi.tables.rsdp import build_rsdp
from vcpuhp.acpi.tables.sdt import checksum, sdt
from vcpuhp.acpi.tables.spcr import build_spcr
from vcpuhp.acpi.tables.xsdt import build_xsdt

__all__ = [
    "GiccInfo",
    "RedistributorRange",
    "build_dsdt",
    "build_fadt",
    "build_gtdt",
    "build_madt",
    "build_pptt",
    "build_rsdp",
    "build_spcr",
    "build_xsdt",
    "checksum",
    "gicc_entry",
    "sdt",
]
