"""arm64 Linux kernel files: a bare ``Image``, a gzip'd ``Image``, an EFI zboot ``vmlinuz``.

QEMU 7.2's ``-kernel`` loads a bare or gzip'd arm64 ``Image`` but not an EFI
zboot image (an EFI application carrying the compressed ``Image``). Debian
ships either form depending on the release and kernel configuration, so the
tool always hands QEMU the bare ``Image`` this module extracts.

Facts (Linux ``Documentation/arch/arm64/booting.rst`` and
``drivers/firmware/efi/libstub/zboot-header.S``):

- ``Image``: 64-byte header, magic ``ARM\\x64`` at 0x38, ``text_offset`` (u64)
  at 0x08, ``image_size`` (u64) at 0x10, all little-endian.
- zboot: ``MZ`` at 0, ``zimg`` at 4, payload offset (u32) at 8, payload size
  (u32) at 12, the compression name (NUL-terminated) at 0x18; the payload is
  the compressed ``Image``.
"""

from __future__ import annotations

import enum
import gzip
import lzma
import struct
import zlib
from dataclasses import dataclass
from typing import Final

from arm64host.errors import ImageFormatError

IMAGE_MAGIC: Final = b"ARM\x64"
IMAGE_MAGIC_OFFSET: Final = 0x38
IMAGE_HEADER_SIZE: Final = 64
ZBOOT_MAGIC: Final = b"zimg"
ZBOOT_HEADER: Final = struct.Struct("<2s2x4sII8x32s")
_GZIP_MAGIC: Final = b"\x1f\x8b"
_IMAGE_FIELDS: Final = struct.Struct("<QQQ")  # text_offset, image_size, flags at 0x08


class KernelFormat(enum.Enum):
    """How a kernel file stores the arm64 ``Image``."""

    IMAGE = "Image"
    GZIP = "gzip'd Image"
    ZBOOT = "EFI zboot"


@dataclass(frozen=True)
class ImageHeader:
    """The fields of an arm64 ``Image`` header a loader needs."""

    text_offset: int
    image_size: int
    flags: int


def detect_format(data: bytes) -> KernelFormat:
    """Say which of the known layouts ``data`` has; anything else is an error."""
    if data[4:8] == ZBOOT_MAGIC and data[:2] == b"MZ":
        return KernelFormat.ZBOOT
    if data[:2] == _GZIP_MAGIC:
        return KernelFormat.GZIP
    if data[IMAGE_MAGIC_OFFSET:IMAGE_MAGIC_OFFSET + 4] == IMAGE_MAGIC:
        return KernelFormat.IMAGE
    raise ImageFormatError(
        "not an arm64 kernel: expected an Image (ARM\\x64 at 0x38), a gzip stream "
        f"or an EFI zboot image (MZ, 'zimg' at 4); the file starts with {data[:8].hex()}")


def parse_image_header(image: bytes) -> ImageHeader:
    """The header of a bare ``Image``; a short or foreign file is an error."""
    if len(image) < IMAGE_HEADER_SIZE or detect_format(image) is not KernelFormat.IMAGE:
        raise ImageFormatError(
            f"not a bare arm64 Image ({len(image)} bytes; ARM\\x64 magic expected at 0x38)")
    text_offset, image_size, flags = _IMAGE_FIELDS.unpack_from(image, 0x08)
    return ImageHeader(text_offset=text_offset, image_size=image_size, flags=flags)


def zboot_compression(data: bytes) -> str:
    """The compression name recorded in a zboot header (``gzip``, ``zstd22`` ...)."""
    _, _, _, _, name = ZBOOT_HEADER.unpack_from(data, 0)
    return bytes(name).split(b"\0", 1)[0].decode("ascii", "replace")


def extract_image(data: bytes) -> bytes:
    """The bare arm64 ``Image`` inside ``data`` (returned as is if already bare).

    Supported payload compressions: gzip, xz, lzma (what Python's standard
    library decompresses). Anything else is an error naming what was found.
    """
    kind = detect_format(data)
    if kind is KernelFormat.IMAGE:
        image = data
    elif kind is KernelFormat.GZIP:
        image = _gunzip(data, "gzip'd kernel")
    else:
        image = _unpack_zboot(data)
    parse_image_header(image)
    return image


def _unpack_zboot(data: bytes) -> bytes:
    if len(data) < ZBOOT_HEADER.size:
        raise ImageFormatError(f"zboot image truncated: {len(data)} bytes, header needs "
                               f"{ZBOOT_HEADER.size}")
    _, _, offset, size, _ = ZBOOT_HEADER.unpack_from(data, 0)
    compression = zboot_compression(data)
    if offset < ZBOOT_HEADER.size or offset + size > len(data):
        raise ImageFormatError(
            f"zboot payload [{offset:#x}, {offset + size:#x}) is outside the "
            f"{len(data):#x}-byte file")
    payload = data[offset:offset + size]
    if compression == "gzip":
        return _gunzip(payload, "zboot gzip payload")
    if compression in ("xz", "xzkern", "lzma"):
        try:
            return lzma.decompress(payload)
        except lzma.LZMAError as exc:
            raise ImageFormatError(f"zboot {compression} payload is corrupt: {exc}") from exc
    raise ImageFormatError(
        f"zboot payload compressed with {compression!r}; supported: gzip, xz, lzma")


def _gunzip(data: bytes, what: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ImageFormatError(f"{what} is corrupt: {exc}") from exc
