"""The arm64 Linux kernel ``Image`` format (Linux ``Documentation/arch/arm64/booting.rst``)
and the EFI zboot wrapper some distributions ship it in.

An ``Image`` starts with a 64-byte header::

    0x00 u32 code0, u32 code1      executable code (an EFI-stub kernel's starts with "MZ")
    0x08 u64 text_offset           image load offset from a 2 MiB aligned base
    0x10 u64 image_size            effective image size, BSS included
    0x18 u64 flags                 bit 0 big-endian, bits 1-2 page size, bit 3 placement
    0x20 u64 res2, res3, res4
    0x38 u32 magic                 0x644d5241, "ARM\\x64"
    0x3c u32 res5                  offset of the PE header (EFI stub)

An EFI zboot image (Linux ``drivers/firmware/efi/libstub/zboot-header.S``) is
a small EFI program carrying the compressed ``Image``: "zimg" at offset 4,
the payload's offset and size (u32) at 8 and 12, the compression's name
(NUL-padded) at 0x18. Debian trixie ships a plain ``Image``; Fedora and
Ubuntu ship zboot. Payloads the Python standard library can unpack are
unpacked (gzip, xz, lzma); others (zstd, lz4, lzo) get an error naming the
compression and what to do.
"""

from __future__ import annotations

import gzip
import lzma
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from vcpuhp.errors import ConfigError

IMAGE_MAGIC: Final = 0x644D_5241
ZBOOT_MAGIC: Final = b"zimg"
HEADER: Final = struct.Struct("<IIQQQQQQII")
_ZBOOT: Final = struct.Struct("<4s4sII")
FLAG_BIG_ENDIAN: Final = 1 << 0
FLAG_PLACEMENT_ANYWHERE: Final = 1 << 3
_PAGE_SIZES: Final = {0: "unspecified", 1: "4K", 2: "16K", 3: "64K"}
_DECOMPRESSORS: Final[dict[str, Callable[[bytes], bytes]]] = {
    "gzip": gzip.decompress,
    "xzkern": lambda data: lzma.decompress(data, lzma.FORMAT_XZ),
    "lzma": lambda data: lzma.decompress(data, lzma.FORMAT_ALONE),
}
LEGACY_TEXT_OFFSET: Final = 0x8_0000
"""What booting.rst says to assume when ``image_size`` is 0 (kernels before 3.17)."""


@dataclass(frozen=True)
class KernelImage:
    """A little-endian arm64 ``Image`` ready to be placed."""

    data: bytes
    text_offset: int
    image_size: int
    """Bytes the kernel occupies from its load address, BSS included."""
    flags: int
    compression: str | None = None
    """The zboot payload's compression, ``None`` for a plain ``Image``."""

    @property
    def page_size(self) -> str:
        """The kernel's page size as its header states it."""
        return _PAGE_SIZES[(self.flags >> 1) & 0x3]


def is_arm64_image(data: bytes) -> bool:
    """Whether ``data`` starts with an arm64 ``Image`` header or a zboot wrapper."""
    return _is_image(data) or _is_zboot(data)


def _is_image(data: bytes) -> bool:
    return len(data) >= HEADER.size and HEADER.unpack_from(data)[8] == IMAGE_MAGIC


def _is_zboot(data: bytes) -> bool:
    return len(data) >= _ZBOOT.size and data[:2] == b"MZ" and data[4:8] == ZBOOT_MAGIC


def parse_kernel(data: bytes, name: str) -> KernelImage:
    """The ``Image`` in ``data`` (unwrapping zboot); :class:`ConfigError` naming ``name``
    when it is neither, is big-endian, or is truncated."""
    compression = None
    if _is_zboot(data):
        compression, data = _unwrap_zboot(data, name)
    if not _is_image(data):
        raise ConfigError(f"{name} is not an arm64 Linux Image (no 'ARM\\x64' magic at 0x38)")
    _code0, _code1, text_offset, image_size, flags, *_rest, _magic, _pe = HEADER.unpack_from(data)
    if flags & FLAG_BIG_ENDIAN:
        raise ConfigError(f"{name} is a big-endian kernel; this machine runs little-endian")
    if image_size == 0:
        text_offset, image_size = LEGACY_TEXT_OFFSET, len(data)
    if image_size < len(data):
        raise ConfigError(
            f"{name}: header image_size {image_size} is smaller than the file ({len(data)} bytes)"
        )
    if text_offset % 4096:
        raise ConfigError(f"{name}: text_offset {text_offset:#x} is not page aligned")
    return KernelImage(data, text_offset, image_size, flags, compression)


def _unwrap_zboot(data: bytes, name: str) -> tuple[str, bytes]:
    _mz, _magic, offset, size = _ZBOOT.unpack_from(data)
    compression = data[0x18:0x20].split(b"\0", 1)[0].decode("ascii", "replace")
    if offset + size > len(data) or size == 0:
        raise ConfigError(
            f"{name}: zboot payload ({size} bytes at {offset:#x}) lies outside the "
            f"{len(data)}-byte file"
        )
    decompress = _DECOMPRESSORS.get(compression)
    if decompress is None:
        raise ConfigError(
            f"{name}: zboot payload uses {compression or 'an unnamed'} compression; supported: "
            f"{', '.join(_DECOMPRESSORS)}. Unpack it (e.g. with the kernel's "
            "scripts/extract-vmlinux) and pass the Image"
        )
    try:
        return compression, decompress(data[offset : offset + size])
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise ConfigError(f"{name}: zboot {compression} payload is corrupt: {exc}") from None


__all__ = ["IMAGE_MAGIC", "KernelImage", "is_arm64_image", "parse_kernel"]
