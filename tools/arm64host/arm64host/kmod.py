"""Linux kernel modules: read their ``.modinfo``, order a set with its dependencies.

Debian's kernel package ships its modules xz-compressed and without
``modules.dep`` (its maintainer script runs ``depmod`` on installation, which
never happens here), so the dependencies are taken from where ``depmod`` takes
them: the ``depends=`` entry that ``modpost`` writes into each module's
``.modinfo`` ELF section. Modules named in ``modules.builtin`` are part of the
kernel and need no loading. busybox ``insmod`` loads an uncompressed file, so
the chosen modules are decompressed at build time.
"""

from __future__ import annotations

import gzip
import lzma
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from arm64host.errors import ImageFormatError

_ELF_MAGIC: Final = b"\x7fELF"
_ELFCLASS64: Final = 2
_ELFDATA2LSB: Final = 1
_EHDR: Final = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR: Final = struct.Struct("<IIQQQQIIQQ")
_SUFFIXES: Final = (".ko.xz", ".ko.gz", ".ko")


def module_name(path: str | Path) -> str:
    """The name the kernel knows a module file by (``9pnet_virtio.ko.xz`` -> ``9pnet_virtio``)."""
    base = Path(path).name
    for suffix in _SUFFIXES:
        if base.endswith(suffix):
            return base[: -len(suffix)].replace("-", "_")
    raise ImageFormatError(f"{path}: not a kernel module file (expected one of {_SUFFIXES})")


def read_module(path: Path) -> bytes:
    """The uncompressed ELF object of a module file (``.ko``, ``.ko.xz`` or ``.ko.gz``)."""
    data = path.read_bytes()
    try:
        if path.name.endswith(".xz"):
            return lzma.decompress(data)
        if path.name.endswith(".gz"):
            return gzip.decompress(data)
    except (lzma.LZMAError, OSError, EOFError) as exc:
        raise ImageFormatError(f"{path}: corrupt compressed module: {exc}") from exc
    return data


def parse_modinfo(elf: bytes) -> dict[str, list[str]]:
    """The ``key=value`` entries of a module's ``.modinfo`` section, values per key in order."""
    section = _section(elf, b".modinfo")
    info: dict[str, list[str]] = {}
    for raw in section.split(b"\0"):
        if b"=" not in raw:
            continue
        key, _, value = raw.decode("utf-8", "replace").partition("=")
        info.setdefault(key, []).append(value)
    return info


def dependencies(modinfo: Mapping[str, list[str]]) -> list[str]:
    """The module names a module's ``depends=`` entry lists (may be empty)."""
    names: list[str] = []
    for entry in modinfo.get("depends", []):
        names.extend(name.replace("-", "_") for name in entry.split(",") if name)
    return names


def _section(elf: bytes, wanted: bytes) -> bytes:
    if len(elf) < _EHDR.size or elf[:4] != _ELF_MAGIC:
        raise ImageFormatError("kernel module is not an ELF object")
    if elf[4] != _ELFCLASS64 or elf[5] != _ELFDATA2LSB:
        raise ImageFormatError("kernel module is not a little-endian ELF64 object")
    fields = _EHDR.unpack_from(elf, 0)
    shoff, shentsize, shnum, shstrndx = fields[6], fields[11], fields[12], fields[13]
    if shentsize != _SHDR.size or shoff + shnum * shentsize > len(elf) or shstrndx >= shnum:
        raise ImageFormatError("kernel module has a truncated or malformed section table")
    headers = [_SHDR.unpack_from(elf, shoff + i * shentsize) for i in range(shnum)]
    names_offset, names_size = headers[shstrndx][4], headers[shstrndx][5]
    names = elf[names_offset:names_offset + names_size]
    for header in headers:
        name_start = header[0]
        name = names[name_start:names.find(b"\0", name_start)]
        if name == wanted:
            offset, size = header[4], header[5]
            if offset + size > len(elf):
                raise ImageFormatError(f"kernel module section {wanted.decode()} is truncated")
            return elf[offset:offset + size]
    raise ImageFormatError(f"kernel module has no {wanted.decode()} section")


@dataclass(frozen=True)
class Module:
    """One module to load: its name and uncompressed object."""

    name: str
    elf: bytes


class ModuleTree:
    """The modules of one kernel release: ``lib/modules/<release>`` of the kernel package."""

    def __init__(self, release_dir: Path) -> None:
        self.release_dir = release_dir
        self._files: dict[str, Path] = {}
        for path in (release_dir / "kernel").rglob("*.ko*"):
            self._files[module_name(path)] = path
        builtin = release_dir / "modules.builtin"
        lines = builtin.read_text().split() if builtin.exists() else []
        self.builtin: frozenset[str] = frozenset(module_name(line) for line in lines)

    def load_order(self, wanted: Iterable[str]) -> list[Module]:
        """``wanted`` and everything they depend on, each after its dependencies.

        Built-in modules are left out; a name that is neither a module file nor
        built in is an error that says so.
        """
        ordered: list[Module] = []
        done: set[str] = set()

        def visit(name: str, chain: tuple[str, ...]) -> None:
            name = name.replace("-", "_")
            if name in done or name in self.builtin:
                return
            if name in chain:
                raise ImageFormatError(f"module dependency cycle: {' -> '.join((*chain, name))}")
            path = self._files.get(name)
            if path is None:
                raise ImageFormatError(
                    f"kernel module {name!r} is neither in {self.release_dir}/kernel "
                    "nor built in (modules.builtin)")
            elf = read_module(path)
            for dependency in dependencies(parse_modinfo(elf)):
                visit(dependency, (*chain, name))
            done.add(name)
            ordered.append(Module(name=name, elf=elf))

        for name in wanted:
            visit(name, ())
        return ordered
