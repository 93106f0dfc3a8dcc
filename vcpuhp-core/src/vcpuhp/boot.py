"""What an executing backend's machine puts in RAM before the boot CPU starts.

RAM layout (see ``vcpuhp-core/guest/README.md``): ACPI tables at the start of
RAM (the boot CPU gets the RSDP address in x1), the guest command line at
``CMDLINE_ADDR`` (address in x0), the kernel image at ``KERNEL_LOAD_ADDR``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from vcpuhp import memmap
from vcpuhp.errors import ConfigError
from vcpuhp.loader import LoadedImage, load_image

if TYPE_CHECKING:
    from vcpuhp.machine import VirtMachine

BUNDLED_GUEST: Final = "vcpuhp-guest.elf"


def bundled_image(name: str = BUNDLED_GUEST) -> Path:
    """Path of an image shipped in ``vcpuhp/firmware``."""
    path = Path(str(resources.files("vcpuhp.firmware").joinpath(name)))
    if not path.is_file():
        raise ConfigError(f"bundled guest image {name} is missing from {path.parent}")
    return path


@dataclass(frozen=True)
class BootImage:
    """The loaded kernel and where the boot CPU finds its inputs."""

    image: LoadedImage
    entry_point: int
    rsdp_address: int
    tables: Any


def prepare(machine: VirtMachine) -> BootImage:
    """Build and place the ACPI tables, the command line and the kernel."""
    from vcpuhp.acpi import build_tables

    memory = machine.memory
    assert memory is not None
    tables = build_tables(machine.description)
    machine.plugins.hook.vcpuhp_acpi_tables_built(machine=machine, tables=tables)
    rsdp = tables.place(memory, memmap.ACPI_TABLES_ADDR)
    cmdline = machine.config.guest_cmdline.encode() + b"\0"
    if len(cmdline) > memmap.CMDLINE_MAX:
        raise ConfigError(f"guest command line is longer than {memmap.CMDLINE_MAX - 1} bytes")
    memory.write(memmap.CMDLINE_ADDR, cmdline)
    kernel = machine.config.kernel or bundled_image()
    image = load_image(Path(kernel), memory, memmap.KERNEL_LOAD_ADDR)
    if image.low < memmap.KERNEL_LOAD_ADDR and image.high > memmap.ACPI_TABLES_ADDR:
        raise ConfigError(
            f"kernel {kernel} overlaps the boot area below {memmap.KERNEL_LOAD_ADDR:#x}"
        )
    return BootImage(image, image.entry_point, rsdp, tables)
