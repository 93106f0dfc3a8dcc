"""Loading guest images into RAM: ELF64 (AArch64) or raw binaries."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from vcpuhp.errors import ConfigError
from vcpuhp.memory import GuestMemory

_ELF_MAGIC: Final = b"\x7fELF"
_EM_AARCH64: Final = 183
_PT_LOAD: Final = 1


@dataclass(frozen=True)
class LoadedImage:
    """Where an image went and where execution starts."""

    path: Path
    entry_point: int
    low: int
    high: int
    symbols: dict[str, int]


def load_image(path: Path, memory: GuestMemory, load_address: int) -> LoadedImage:
    """Load ``path`` into ``memory``: an ELF at its segments' physical addresses,
    anything else as a raw image at ``load_address`` (which is then the entry)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read kernel image {path}: {exc.strerror}") from None
    if data[:4] == _ELF_MAGIC:
        return _load_elf(path, data, memory)
    if not memory.contains(load_address, max(len(data), 1)):
        raise ConfigError(
            f"kernel image {path} ({len(data)} bytes) does not fit in RAM at {load_address:#x}"
        )
    memory.write(load_address, data)
    return LoadedImage(path, load_address, load_address, load_address + len(data), {})


def _load_elf(path: Path, data: bytes, memory: GuestMemory) -> LoadedImage:
    if data[4] != 2 or data[5] != 1:
        raise ConfigError(f"{path}: only little-endian ELF64 images are supported")
    (machine,) = struct.unpack_from("<H", data, 18)
    if machine != _EM_AARCH64:
        raise ConfigError(f"{path}: ELF machine {machine} is not AArch64 ({_EM_AARCH64})")
    entry, phoff, shoff = struct.unpack_from("<QQQ", data, 24)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 54)
    low, high = 1 << 64, 0
    for n in range(phnum):
        p_type, _flags, offset, _vaddr, paddr, filesz, memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + n * phentsize
        )
        if p_type != _PT_LOAD or memsz == 0:
            continue
        if not memory.contains(paddr, memsz):
            raise ConfigError(
                f"{path}: segment at {paddr:#x} ({memsz} bytes) is outside guest RAM "
                f"{memory.base:#x}-{memory.base + memory.size - 1:#x}"
            )
        memory.write(paddr, data[offset : offset + filesz] + bytes(memsz - filesz))
        low, high = min(low, paddr), max(high, paddr + memsz)
    if high == 0:
        raise ConfigError(f"{path}: ELF has no loadable segment")
    return LoadedImage(path, entry, low, high, _symbols(data, shoff, shentsize, shnum))


def _symbols(data: bytes, shoff: int, shentsize: int, shnum: int) -> dict[str, int]:
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + n * shentsize)
                for n in range(shnum)]
    symbols: dict[str, int] = {}
    for section in sections:
        if section[1] != 2:  # SHT_SYMTAB
            continue
        strtab = sections[section[6]]
        str_off = strtab[4]
        for pos in range(section[4], section[4] + section[5], 24):
            name_off, _info, _other, _shndx, value, _size = struct.unpack_from("<IBBHQQ", data, pos)
            if name_off:
                end = data.index(b"\0", str_off + name_off)
                symbols[data[str_off + name_off : end].decode()] = value
    return symbols
