"""The bundled guest's boot convention (ELF or raw images that are not Linux).

RAM layout (see ``vcpuhp-core/guest/README.md``): ACPI tables at the start of
RAM, the guest command line at ``CMDLINE_ADDR``, the kernel image at
``KERNEL_LOAD_ADDR`` (or at an ELF's own physical addresses). The boot CPU
starts at the image's entry with ``x0`` = the command line's address and
``x1`` = the RSDP's.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Final

from vcpuhp import memmap
from vcpuhp.errors import ConfigError
from vcpuhp.loader import load_image

if TYPE_CHECKING:
    from vcpuhp.acpi import AcpiTables
    from vcpuhp.memory import GuestMemory

BUNDLED_GUEST: Final = "vcpuhp-guest.elf"


def bundled_image(name: str = BUNDLED_GUEST) -> Path:
    """Path of an image shipped in ``vcpuhp/firmware``."""
    path = Path(str(resources.files("vcpuhp.firmware").joinpath(name)))
    if not path.is_file():
        raise ConfigError(f"bundled guest image {name} is missing from {path.parent}")
    return path


def load_bundled_convention(
    memory: GuestMemory, tables: AcpiTables, kernel: Path, cmdline: str
) -> tuple[int, tuple[int, ...]]:
    """Place the tables, the command line and ``kernel``; ``(entry point, x0.. at entry)``."""
    encoded = cmdline.encode() + b"\0"
    if len(encoded) > memmap.CMDLINE_MAX:
        raise ConfigError(f"guest command line is longer than {memmap.CMDLINE_MAX - 1} bytes")
    rsdp = tables.place(memory, memmap.ACPI_TABLES_ADDR)
    memory.write(memmap.CMDLINE_ADDR, encoded)
    image = load_image(kernel, memory, memmap.KERNEL_LOAD_ADDR)
    if image.low < memmap.KERNEL_LOAD_ADDR and image.high > memmap.ACPI_TABLES_ADDR:
        raise ConfigError(
            f"kernel {kernel} overlaps the boot area below {memmap.KERNEL_LOAD_ADDR:#x}"
        )
    return image.entry_point, (memmap.CMDLINE_ADDR, rsdp)


__all__ = ["BUNDLED_GUEST", "bundled_image", "load_bundled_convention"]
