"""The device tree an ACPI machine hands Linux: ``/chosen`` and nothing else.

CPUs, the GIC, devices and memory come from ACPI and the EFI memory map; the
tree only carries the command line, the initrd and where the EFI system table
and memory map are (Linux ``drivers/firmware/efi/fdtparams.c``). With a tree
that holds nothing but ``/chosen``, arm64 Linux treats it as a stub and takes
ACPI. Encoded with the ``fdt`` library (a maintained FDT implementation), not
by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import fdt

from vcpuhp.boot import efi

FDT_VERSION = 17
SECURE_BOOT_DISABLED = 2
"""``linux,uefi-secure-boot`` holds Linux's ``enum efi_secureboot_mode`` (what the EFI
stub writes): 0 unset, 1 unknown, 2 disabled, 3 enabled. 0 makes Linux warn
"secureboot: Secure boot could not be determined (mode 0)"; this machine has
no secure boot, so it says disabled."""
MAX_DTB_SIZE = 64 * 1024
"""Far above what /chosen needs; Linux accepts up to 2 MiB."""


@dataclass(frozen=True)
class Chosen:
    """What goes in ``/chosen``."""

    bootargs: str
    system_table: int
    memory_map: int
    memory_map_size: int
    initrd: tuple[int, int] | None = None
    """``(start, end)``: end is one past the last byte, as Linux reads it."""


def _u64(name: str, value: int) -> fdt.PropWords:
    return fdt.PropWords(name, value >> 32, value & 0xFFFF_FFFF)


def chosen_dtb(chosen: Chosen) -> bytes:
    """The flattened device tree blob for ``chosen``."""
    tree = fdt.FDT()
    tree.set_property("#address-cells", 2)
    tree.set_property("#size-cells", 2)
    node = fdt.Node("chosen")
    if chosen.bootargs:
        node.append(fdt.PropStrings("bootargs", chosen.bootargs))
    else:  # the library refuses an empty string; an empty one is a lone NUL
        node.append(fdt.PropBytes("bootargs", data=b"\0"))
    if chosen.initrd is not None:
        start, end = chosen.initrd
        node.append(_u64("linux,initrd-start", start))
        node.append(_u64("linux,initrd-end", end))
    node.append(_u64("linux,uefi-system-table", chosen.system_table))
    node.append(_u64("linux,uefi-mmap-start", chosen.memory_map))
    node.append(fdt.PropWords("linux,uefi-mmap-size", chosen.memory_map_size))
    node.append(fdt.PropWords("linux,uefi-mmap-desc-size", efi.MEMORY_DESCRIPTOR_SIZE))
    node.append(fdt.PropWords("linux,uefi-mmap-desc-ver", efi.MEMORY_DESCRIPTOR_VERSION))
    node.append(fdt.PropWords("linux,uefi-secure-boot", SECURE_BOOT_DISABLED))
    tree.add_item(node)
    blob = bytes(tree.to_dtb(version=FDT_VERSION))
    if len(blob) > MAX_DTB_SIZE:
        raise ValueError(f"device tree of {len(blob)} bytes exceeds {MAX_DTB_SIZE}")
    return blob


__all__ = ["MAX_DTB_SIZE", "SECURE_BOOT_DISABLED", "Chosen", "chosen_dtb"]
