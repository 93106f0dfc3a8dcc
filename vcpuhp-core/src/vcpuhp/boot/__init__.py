"""What an executing backend's machine puts in RAM before the boot CPU starts.

Two boot protocols, chosen by the kernel file:

* an arm64 Linux ``Image`` (plain or EFI zboot): direct kernel boot with ACPI
  and a minimal static EFI environment (:mod:`vcpuhp.boot.linux`), entered
  with ``x0`` = the device tree;
* anything else (an ELF or a raw image; the bundled guest by default): the
  bundled guest's convention (:mod:`vcpuhp.boot.guest`), entered with
  ``x0`` = the command line and ``x1`` = the RSDP.

The parts are pure functions of the machine's description
(:mod:`~vcpuhp.boot.arm64_image`, :mod:`~vcpuhp.boot.devicetree`,
:mod:`~vcpuhp.boot.efi`, :mod:`~vcpuhp.boot.linux`); :func:`prepare` reads
the files and writes RAM.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from vcpuhp import memmap
from vcpuhp.boot.arm64_image import is_arm64_image, parse_kernel
from vcpuhp.boot.guest import BUNDLED_GUEST, bundled_image, load_bundled_convention
from vcpuhp.boot.linux import LinuxBootPlan, plan_linux_boot
from vcpuhp.errors import ConfigError

if TYPE_CHECKING:
    from vcpuhp.machine import VirtMachine

LINUX: Final = "linux"
BUNDLED: Final = "bundled"


@dataclass(frozen=True)
class BootImage:
    """Where the boot CPU starts and with what."""

    protocol: str
    """:data:`LINUX` or :data:`BUNDLED`."""
    entry_point: int
    boot_args: tuple[int, ...]
    """``x0``, ``x1``, ... at entry."""
    rsdp_address: int
    tables: Any
    linux: LinuxBootPlan | None = None


def read_boot_file(path: Path, what: str, limit: int) -> bytes:
    """The bytes of a kernel or initrd: a regular file of at most ``limit`` bytes.

    A device (``/dev/zero``), a FIFO or a directory is refused before anything
    is read, so a wrong path can neither hang start-up nor exhaust memory.
    """
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{what} {path} is not a regular file")
    if info.st_size > limit:
        raise ConfigError(
            f"{what} {path} ({info.st_size} bytes) is larger than guest RAM ({limit} bytes)"
        )
    try:
        with path.open("rb") as file:
            return file.read(limit + 1)[:limit]
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


def prepare(machine: VirtMachine) -> BootImage:
    """Build the ACPI tables and place everything the guest needs in RAM."""
    from vcpuhp.acpi import build_tables

    memory = machine.memory
    assert memory is not None
    config = machine.config
    tables = build_tables(machine.description)
    machine.plugins.hook.vcpuhp_acpi_tables_built(machine=machine, tables=tables)
    kernel_path = Path(config.kernel) if config.kernel is not None else bundled_image()
    kernel_bytes = read_boot_file(kernel_path, "kernel", memory.size)
    if not is_arm64_image(kernel_bytes):
        if config.initrd is not None:
            raise ConfigError(
                f"--initrd needs a Linux kernel Image; {kernel_path} is not one"
            )
        entry, args = load_bundled_convention(memory, tables, kernel_path, config.guest_cmdline)
        return BootImage(BUNDLED, entry, args, tables.addresses["RSDP"], tables)
    kernel = parse_kernel(kernel_bytes, str(kernel_path))
    initrd = (read_boot_file(Path(config.initrd), "initrd", memory.size)
              if config.initrd is not None else None)
    plan = plan_linux_boot(machine.description, kernel, config.guest_cmdline, tables, initrd)
    memory.write(memory.base, bytes(memmap.ACPI_TABLES_MAX))
    for address, data in plan.segments:
        memory.write(address, data)
    return BootImage(LINUX, plan.entry_point, plan.boot_args, plan.rsdp_address, tables, plan)


__all__ = ["BUNDLED", "BUNDLED_GUEST", "LINUX", "BootImage", "bundled_image", "prepare",
           "read_boot_file"]
