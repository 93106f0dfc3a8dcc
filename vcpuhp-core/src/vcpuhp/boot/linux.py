"""Direct boot of an arm64 Linux kernel with ACPI and no firmware: the plan of guest RAM.

:func:`plan_linux_boot` is a pure function of the machine's description, the
kernel, the initrd, the command line and the ACPI tables: it says which bytes
go where and how the boot CPU starts (Linux ``booting.rst``: at the kernel's
entry, EL1, MMU off, ``x0`` = the device tree's address, ``x1``-``x3`` = 0).
RAM from its base::

    +0x000000  ACPI tables (RSDP first)               EFI: ACPI reclaim
    +0x100000  EFI area: system table, vendor string,  EFI: runtime services data
               configuration table, SMBIOS entry
               point and structures, memory map
    +0x110000  device tree (/chosen only)              conventional
    +0x200000  kernel (2 MiB aligned + text_offset)    conventional
               initrd (after the kernel's image_size,  conventional
               2 MiB aligned)
               ... the rest of RAM                     conventional

Linux reserves its own image, the initrd and the device tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from vcpuhp import memmap
from vcpuhp.boot import efi, smbios
from vcpuhp.boot.arm64_image import KernelImage
from vcpuhp.boot.devicetree import MAX_DTB_SIZE, Chosen, chosen_dtb
from vcpuhp.errors import ConfigError

if TYPE_CHECKING:
    from vcpuhp.acpi import AcpiTables
    from vcpuhp.description import MachineDescription

EFI_AREA_OFFSET: Final = 0x10_0000
EFI_AREA_SIZE: Final = 0x1_0000
DTB_OFFSET: Final = EFI_AREA_OFFSET + EFI_AREA_SIZE
KERNEL_BASE_OFFSET: Final = 0x20_0000
KERNEL_ALIGNMENT: Final = 0x20_0000
_VENDOR_OFFSET: Final = 0x100
_CONFIG_TABLE_OFFSET: Final = 0x200
_SMBIOS_ENTRY_OFFSET: Final = 0x300
_SMBIOS_TABLE_OFFSET: Final = 0x400
_MEMORY_MAP_OFFSET: Final = 0x1000
FIRMWARE_VENDOR: Final = "vcpuhp"
REQUIRED_ARGUMENTS: Final = (("efi=", "efi=noruntime"), ("acpi=", "acpi=force"))
"""Added to the command line unless it sets them: the machine has no EFI runtime
services and describes itself only through ACPI."""


def _align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


@dataclass(frozen=True)
class LinuxBootPlan:
    """What goes into RAM and how the boot CPU starts."""

    segments: tuple[tuple[int, bytes], ...]
    """``(guest-physical address, bytes)`` to write, in address order."""
    entry_point: int
    dtb_address: int
    bootargs: str
    kernel: tuple[int, int]
    """``(start, end)`` the kernel occupies (``image_size`` from its load address)."""
    initrd: tuple[int, int] | None
    memory_map: tuple[efi.MemoryDescriptor, ...]
    rsdp_address: int

    @property
    def boot_args(self) -> tuple[int, int, int, int]:
        """``x0``-``x3`` at entry."""
        return (self.dtb_address, 0, 0, 0)


def linux_bootargs(cmdline: str) -> str:
    """``cmdline`` plus what this machine needs that it does not set."""
    words = cmdline.split()
    extra = [default for prefix, default in REQUIRED_ARGUMENTS
             if not any(word.startswith(prefix) for word in words)]
    return " ".join([*words, *extra])


def _memory_map(description: MachineDescription, tables_size: int) -> list[efi.MemoryDescriptor]:
    base, end = description.ram_base, description.ram_base + description.ram_size
    page = efi.EFI_PAGE_SIZE
    acpi_end = base + _align_up(tables_size, page)
    efi_area = base + EFI_AREA_OFFSET
    efi_end = efi_area + EFI_AREA_SIZE
    ram = efi.RAM_ATTRIBUTES
    entries = [efi.MemoryDescriptor(efi.MemoryType.ACPI_RECLAIM, base, (acpi_end - base) // page,
                                    ram)]
    if efi_area > acpi_end:
        entries.append(efi.MemoryDescriptor(efi.MemoryType.CONVENTIONAL, acpi_end,
                                            (efi_area - acpi_end) // page, ram))
    entries.append(efi.MemoryDescriptor(efi.MemoryType.RUNTIME_SERVICES_DATA, efi_area,
                                        EFI_AREA_SIZE // page, ram | efi.ATTRIBUTE_RUNTIME))
    entries.append(efi.MemoryDescriptor(efi.MemoryType.CONVENTIONAL, efi_end,
                                        (end - efi_end) // page, ram))
    return entries


def plan_linux_boot(
    description: MachineDescription,
    kernel: KernelImage,
    cmdline: str,
    tables: AcpiTables,
    initrd: bytes | None = None,
) -> LinuxBootPlan:
    """Lay out the kernel, initrd, device tree, EFI area and ACPI tables in RAM.

    ``tables`` must be laid out at the start of RAM. :class:`ConfigError` when
    something does not fit, naming what and how much RAM it needs.
    """
    base, ram_end = description.ram_base, description.ram_base + description.ram_size
    if tables.base != base or tables.size > memmap.ACPI_TABLES_MAX:
        raise ConfigError(f"ACPI tables must be laid out at the start of RAM ({base:#x})")
    # RAM starts 2 MiB aligned, so this base suits kernels that must sit close to it.
    kernel_start = base + KERNEL_BASE_OFFSET + kernel.text_offset
    kernel_end = kernel_start + kernel.image_size
    initrd_range = None
    last = kernel_end
    if initrd is not None:
        initrd_start = _align_up(kernel_end, KERNEL_ALIGNMENT)
        initrd_range = (initrd_start, initrd_start + len(initrd))
        last = initrd_range[1]
    if last > ram_end:
        need = _align_up(last - base, 1 << 20) >> 20
        what = (f"the kernel ({kernel.image_size} bytes) needs" if initrd is None else
                f"the kernel ({kernel.image_size} bytes) and the initrd ({len(initrd)} bytes) "
                "need")
        raise ConfigError(
            f"{what} at least {need}M of RAM; the machine has {description.ram_size >> 20}M (-m)"
        )
    efi_area = base + EFI_AREA_OFFSET
    descriptors = _memory_map(description, tables.size)
    mmap_bytes = efi.memory_map(descriptors)
    if _MEMORY_MAP_OFFSET + len(mmap_bytes) > EFI_AREA_SIZE:
        raise AssertionError("EFI memory map outgrew the EFI area")
    bootargs = linux_bootargs(cmdline)
    dtb_address = base + DTB_OFFSET
    dtb = chosen_dtb(Chosen(
        bootargs=bootargs,
        system_table=efi_area,
        memory_map=efi_area + _MEMORY_MAP_OFFSET,
        memory_map_size=len(mmap_bytes),
        initrd=initrd_range,
    ))
    assert len(dtb) <= MAX_DTB_SIZE
    rsdp = tables.addresses["RSDP"]
    smbios_table = smbios.structure_table()
    if _SMBIOS_TABLE_OFFSET + len(smbios_table) > _MEMORY_MAP_OFFSET:
        raise AssertionError("SMBIOS structures outgrew their place in the EFI area")
    smbios_entry = efi_area + _SMBIOS_ENTRY_OFFSET
    configuration = (efi.configuration_table(rsdp)
                     + efi.configuration_entry(smbios.SMBIOS3_TABLE_GUID, smbios_entry))
    system_table = efi.system_table(
        vendor_address=efi_area + _VENDOR_OFFSET,
        tables_address=efi_area + _CONFIG_TABLE_OFFSET,
        table_count=2,
    )
    segments = [
        (base, tables.blob()),
        (efi_area, system_table),
        (efi_area + _VENDOR_OFFSET, efi.firmware_vendor(FIRMWARE_VENDOR)),
        (efi_area + _CONFIG_TABLE_OFFSET, configuration),
        (smbios_entry, smbios.entry_point(efi_area + _SMBIOS_TABLE_OFFSET, len(smbios_table))),
        (efi_area + _SMBIOS_TABLE_OFFSET, smbios_table),
        (efi_area + _MEMORY_MAP_OFFSET, mmap_bytes),
        (dtb_address, dtb),
        (kernel_start, kernel.data),
    ]
    if initrd is not None and initrd_range is not None:
        segments.append((initrd_range[0], initrd))
    return LinuxBootPlan(
        segments=tuple(segments),
        entry_point=kernel_start,
        dtb_address=dtb_address,
        bootargs=bootargs,
        kernel=(kernel_start, kernel_end),
        initrd=initrd_range,
        memory_map=tuple(descriptors),
        rsdp_address=rsdp,
    )


__all__ = ["LinuxBootPlan", "linux_bootargs", "plan_linux_boot"]
