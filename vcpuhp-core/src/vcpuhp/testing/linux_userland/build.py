"""Build the test userland's initramfs (uncompressed ``newc`` cpio) from a busybox binary.

The archive holds a static arm64 busybox with links for the applets the
scripts use, the scripts (:mod:`.scripts`), ``/dev/console`` (the kernel opens
it for PID 1 before any file system is mounted) and the kernel modules given,
loaded in the given order at start. Uncompressed, because unpacking costs a
guest under emulation nothing while gunzip costs seconds.
"""

from __future__ import annotations

import gzip
import lzma
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from vcpuhp.errors import ConfigError
from vcpuhp.testing.linux_userland import scripts
from vcpuhp.testing.linux_userland.newc import NewcArchive

APPLETS: Final = (
    "sh", "mount", "mkdir", "mkfifo", "insmod", "stty", "dmesg", "uevent", "acpid", "poweroff",
    "sleep", "cat", "ls", "ps",
)
"""Linked to ``/bin/busybox``: what the scripts run, plus ``cat``, ``ls`` and ``ps`` for a
person at the console."""
_ELF: Final = struct.Struct("<4sBBBBB7xHHIQQQIHHHHHH")
_EM_AARCH64: Final = 183
_ET_EXEC, _ET_DYN, _ET_REL = 2, 3, 1
_PT_INTERP: Final = 3
_PHDR: Final = struct.Struct("<IIQQQQQQ")
_MODULE_SUFFIXES: Final = (".ko.xz", ".ko.gz", ".ko")


@dataclass(frozen=True)
class KernelModule:
    """A module to load at start: its name and its uncompressed ELF object."""

    name: str
    elf: bytes


def _elf_header(data: bytes, what: str) -> tuple[int, ...]:
    if len(data) < _ELF.size or data[:4] != b"\x7fELF":
        raise ConfigError(f"{what} is not an ELF file")
    fields = _ELF.unpack_from(data)
    if fields[1] != 2 or fields[2] != 1:
        raise ConfigError(f"{what} is not a 64-bit little-endian ELF file")
    if fields[7] != _EM_AARCH64:
        raise ConfigError(f"{what} is for ELF machine {fields[7]}, not AArch64 ({_EM_AARCH64})")
    return tuple(fields)


def check_busybox(data: bytes, name: str = "busybox") -> None:
    """:class:`ConfigError` unless ``data`` is a statically linked arm64 executable.

    The userland has no C library or loader: Debian's ``busybox-static`` package
    has the right binary (``/usr/bin/busybox``; not ``busybox``, which is dynamic).
    """
    fields = _elf_header(data, name)
    elf_type, phoff, phentsize, phnum = fields[6], fields[10], fields[14], fields[15]
    if elf_type not in (_ET_EXEC, _ET_DYN):
        raise ConfigError(f"{name} is not an executable (ELF type {elf_type})")
    for index in range(phnum):
        offset = phoff + index * phentsize
        if offset + _PHDR.size > len(data):
            raise ConfigError(f"{name}: program header {index} lies outside the file")
        if _PHDR.unpack_from(data, offset)[0] == _PT_INTERP:
            raise ConfigError(
                f"{name} is dynamically linked (it names a program interpreter); the userland "
                "needs a static busybox, e.g. /usr/bin/busybox of Debian's busybox-static")
    if b"BusyBox v" not in data:
        raise ConfigError(f"{name} is an arm64 executable but not busybox")


def read_module(path: Path) -> KernelModule:
    """A kernel module file (``.ko``, ``.ko.xz``, ``.ko.gz``, as distributions ship them)."""
    base = path.name
    suffix = next((s for s in _MODULE_SUFFIXES if base.endswith(s)), None)
    if suffix is None:
        raise ConfigError(f"{path} is not a kernel module (expected a name ending in "
                          f"{', '.join(_MODULE_SUFFIXES)})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read module {path}: {exc.strerror}") from None
    try:
        if suffix == ".ko.xz":
            data = lzma.decompress(data)
        elif suffix == ".ko.gz":
            data = gzip.decompress(data)
    except (lzma.LZMAError, OSError, EOFError, zlib.error) as exc:
        raise ConfigError(f"{path}: corrupt compressed module: {exc}") from None
    fields = _elf_header(data, str(path))
    if fields[6] != _ET_REL:
        raise ConfigError(f"{path} is not a relocatable object (a kernel module)")
    return KernelModule(base[: -len(suffix)].replace("-", "_"), data)


def build_initramfs(busybox: bytes, modules: Sequence[KernelModule] = ()) -> bytes:
    """The initramfs: ``busybox`` (checked with :func:`check_busybox`), the scripts and
    ``modules`` (loaded in this order)."""
    check_busybox(busybox)
    names = [module.name for module in modules]
    if len(set(names)) != len(names):
        raise ConfigError(f"a kernel module is given twice: {names}")
    archive = NewcArchive()
    for directory in ("bin", "dev", "etc", "etc/acpi", "etc/acpi/PWRF", "etc/vcpuhp", "lib",
                      "lib/modules", "proc", "run", "sys", "tmp"):
        archive.directory(directory, 0o1777 if directory == "tmp" else 0o755)
    archive.char_device("dev/console", 5, 1)
    archive.file("bin/busybox", busybox, 0o755)
    for applet in APPLETS:
        archive.symlink(f"bin/{applet}", "busybox")
    archive.file("init", scripts.init_script().encode(), 0o755)
    archive.file(scripts.UEVENT_HOOK, scripts.uevent_hook().encode(), 0o755)
    archive.file(scripts.POWER_ACTION, scripts.power_action().encode(), 0o755)
    for position, module in enumerate(modules):
        archive.file(f"lib/modules/{position:02d}-{module.name}.ko", module.elf)
    return archive.to_bytes()


def build_initramfs_file(busybox: Path, output: Path, modules: Sequence[Path] = ()) -> int:
    """Read ``busybox`` and ``modules``, write the initramfs to ``output``; its size."""
    try:
        data = busybox.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read busybox {busybox}: {exc.strerror}") from None
    check_busybox(data, str(busybox))
    image = build_initramfs(data, [read_module(path) for path in modules])
    try:
        output.write_bytes(image)
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror}") from None
    return len(image)


__all__ = ["APPLETS", "KernelModule", "build_initramfs", "build_initramfs_file",
           "check_busybox", "read_module"]
