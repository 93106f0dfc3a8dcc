"""Loading guest images into RAM: ELF64 (AArch64) or raw binaries.

An ELF image is validated completely before anything is written to RAM: a
truncated or inconsistent file is a :class:`~vcpuhp.errors.ConfigError` that
names the file and the problem, and leaves RAM untouched. The symbol table is
optional; a malformed one is ignored (with a warning) and the image still loads.

Only a regular file no larger than guest RAM is read (:func:`read_image`):
``/dev/zero`` or a FIFO is refused at once instead of being read without end
or blocking start-up.
"""

from __future__ import annotations

import logging
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from vcpuhp.errors import ConfigError
from vcpuhp.memory import GuestMemory

_log = logging.getLogger(__name__)

_ELF_MAGIC: Final = b"\x7fELF"
_EM_AARCH64: Final = 183
_PT_LOAD: Final = 1
_SHT_SYMTAB: Final = 2
_EHDR: Final = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR: Final = struct.Struct("<IIQQQQQQ")
_SHDR: Final = struct.Struct("<IIQQQQIIQQ")
_SYM: Final = struct.Struct("<IBBHQQ")
#: Bytes of the entry instruction that must be in RAM.
_ENTRY_BYTES: Final = 4


@dataclass(frozen=True)
class LoadedImage:
    """Where an image went and where execution starts."""

    path: Path
    entry_point: int
    low: int
    high: int
    symbols: dict[str, int]


@dataclass(frozen=True)
class _Segment:
    paddr: int
    data: bytes
    memsz: int


def load_image(path: Path, memory: GuestMemory, load_address: int) -> LoadedImage:
    """Load ``path`` into ``memory``: an ELF at its segments' physical addresses,
    anything else as a raw image at ``load_address`` (which is then the entry).

    Raises :class:`ConfigError` when the file cannot be read, is a malformed
    ELF, or does not fit in guest RAM (an ELF's entry point must be in RAM too).
    """
    data = read_image(path, memory.size)
    if data[:4] == _ELF_MAGIC:
        return _load_elf(path, data, memory)
    if not memory.contains(load_address, max(len(data), 1)):
        raise ConfigError(
            f"kernel image {path} ({len(data)} bytes) does not fit in RAM at {load_address:#x}"
        )
    memory.write(load_address, data)
    return LoadedImage(path, load_address, load_address, load_address + len(data), {})


def read_image(path: Path, limit: int) -> bytes:
    """The bytes of the image file ``path``, which must be a regular file of at most
    ``limit`` bytes (guest RAM); :class:`ConfigError` otherwise.

    The file is opened without blocking, so a FIFO with no writer is refused
    rather than waited on.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ConfigError(f"cannot read kernel image {path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ConfigError(
            f"kernel image {path} is not a regular file ({_file_kind(info.st_mode)}); "
            "give an ELF or raw image file"
        )
    with os.fdopen(fd, "rb") as file:
        if info.st_size > limit:
            raise ConfigError(
                f"kernel image {path} ({info.st_size} bytes) is larger than guest RAM "
                f"({limit} bytes)"
            )
        try:
            data = file.read(limit + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read kernel image {path}: {exc.strerror}") from None
    if len(data) > limit:  # it grew while we read it
        raise ConfigError(f"kernel image {path} is larger than guest RAM ({limit} bytes)")
    return data


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a file")


def _ram(memory: GuestMemory) -> str:
    return f"{memory.base:#x}-{memory.base + memory.size - 1:#x}"


def _load_elf(path: Path, data: bytes, memory: GuestMemory) -> LoadedImage:
    try:
        entry, segments, section_table = _parse_elf(data, memory)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (struct.error, IndexError, ValueError) as exc:  # a check missed below
        raise ConfigError(f"{path}: malformed ELF image: {exc}") from None
    for segment in segments:
        memory.write(segment.paddr, segment.data + bytes(segment.memsz - len(segment.data)))
    low = min(s.paddr for s in segments)
    high = max(s.paddr + s.memsz for s in segments)
    try:
        symbols = _symbols(data, *section_table)
    except (struct.error, IndexError, ValueError) as exc:
        _log.warning("%s: ignoring malformed ELF symbol table: %s", path, exc)
        symbols = {}
    return LoadedImage(path, entry, low, high, symbols)


def _parse_elf(data: bytes, memory: GuestMemory) -> tuple[int, list[_Segment],
                                                          tuple[int, int, int]]:
    """Validate an ELF image; its entry, loadable segments and section table location.

    Raises :class:`ConfigError` (without the file name) for anything malformed.
    """
    if len(data) < _EHDR.size:
        raise ConfigError(
            f"truncated ELF header: the file has {len(data)} bytes, the header needs {_EHDR.size}"
        )
    (ident, _type, machine, _version, entry, phoff, shoff, _flags, _ehsize,
     phentsize, phnum, shentsize, shnum, _shstrndx) = _EHDR.unpack_from(data)
    if ident[4] != 2 or ident[5] != 1:
        raise ConfigError("only little-endian ELF64 images are supported")
    if machine != _EM_AARCH64:
        raise ConfigError(f"ELF machine {machine} is not AArch64 ({_EM_AARCH64})")
    if phnum and phentsize < _PHDR.size:
        raise ConfigError(f"program header entry size {phentsize} is below {_PHDR.size}")
    if phoff + phnum * phentsize > len(data):
        raise ConfigError(
            f"program header table ({phnum} entries of {phentsize} bytes at offset {phoff}) "
            f"extends past the end of the file ({len(data)} bytes)"
        )
    segments: list[_Segment] = []
    for n in range(phnum):
        p_type, _pflags, offset, _vaddr, paddr, filesz, memsz, _align = _PHDR.unpack_from(
            data, phoff + n * phentsize
        )
        if p_type != _PT_LOAD:
            continue
        if filesz > memsz:
            raise ConfigError(
                f"segment {n}: file size {filesz} exceeds its memory size {memsz}"
            )
        if offset + filesz > len(data):
            raise ConfigError(
                f"segment {n}: {filesz} bytes at file offset {offset} extend past the end "
                f"of the file ({len(data)} bytes)"
            )
        if memsz == 0:
            continue
        if not memory.contains(paddr, memsz):
            raise ConfigError(
                f"segment at {paddr:#x} ({memsz} bytes) is outside guest RAM {_ram(memory)}"
            )
        segments.append(_Segment(paddr, data[offset : offset + filesz], memsz))
    if not segments:
        raise ConfigError("ELF has no loadable segment")
    if not memory.contains(entry, _ENTRY_BYTES):
        raise ConfigError(f"entry point {entry:#x} is outside guest RAM {_ram(memory)}")
    return entry, segments, (shoff, shentsize, shnum)


def _symbols(data: bytes, shoff: int, shentsize: int, shnum: int) -> dict[str, int]:
    """The ``SHT_SYMTAB`` symbols by name; raises ValueError/IndexError/struct.error
    when the section or symbol table is malformed."""
    if shnum == 0 or shoff == 0:
        return {}
    if shentsize < _SHDR.size:
        raise ValueError(f"section header entry size {shentsize} is below {_SHDR.size}")
    if shoff + shnum * shentsize > len(data):
        raise ValueError(f"section header table at offset {shoff} extends past the end of file")
    sections = [_SHDR.unpack_from(data, shoff + n * shentsize) for n in range(shnum)]
    symbols: dict[str, int] = {}
    for section in sections:
        if section[1] != _SHT_SYMTAB:
            continue
        link, offset, size = section[6], section[4], section[5]
        if not 0 < link < len(sections):
            raise ValueError(f"symbol table links to section {link}, not one of 1-{shnum - 1}")
        if offset + size > len(data):
            raise ValueError(f"symbol table at offset {offset} extends past the end of file")
        str_off, str_size = sections[link][4], sections[link][5]
        str_end = min(str_off + str_size, len(data))
        for pos in range(offset, offset + size - _SYM.size + 1, _SYM.size):
            name_off, _info, _other, _shndx, value, _size = _SYM.unpack_from(data, pos)
            if name_off:
                start = str_off + name_off
                end = data.index(b"\0", start, str_end)
                symbols[data[start:end].decode()] = value
    return symbols
