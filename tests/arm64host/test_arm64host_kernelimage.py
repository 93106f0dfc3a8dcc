"""Kernel file formats: a bare Image, a gzip'd Image, an EFI zboot image (synthetic)."""

from __future__ import annotations

import gzip
import lzma
import struct

import pytest

from arm64host.errors import ImageFormatError
from arm64host.kernelimage import (
    KernelFormat,
    detect_format,
    extract_image,
    parse_image_header,
    zboot_compression,
)


def make_image(text_offset: int = 0, body: bytes = b"kernel text " * 100) -> bytes:
    """A bare arm64 Image: 64-byte header (branch, text_offset, image_size, flags, magic)."""
    size = 64 + len(body)
    header = struct.pack("<IIQQQQQQ4sI", 0x14000010, 0, text_offset, size, 0xA, 0, 0, 0,
                         b"ARM\x64", 0)
    assert len(header) == 64
    return header + body


def make_zboot(payload: bytes, compression: bytes, *, offset: int = 0x100,
               size: int | None = None) -> bytes:
    """An EFI zboot image: MZ, 'zimg', payload offset and size, compression name at 0x18."""
    header = bytearray(offset)
    struct.pack_into("<2s2x4sII8x", header, 0, b"MZ", b"zimg", offset,
                     len(payload) if size is None else size)
    header[0x18:0x18 + len(compression) + 1] = compression + b"\0"
    header[0x38:0x3C] = b"PE\0\0"  # zboot's PE magic, not the Image magic
    return bytes(header) + payload + b"\0" * 16  # trailing PE padding


def test_bare_image_is_returned_unchanged() -> None:
    image = make_image(text_offset=0x80000)
    assert detect_format(image) is KernelFormat.IMAGE
    assert extract_image(image) == image
    header = parse_image_header(image)
    assert (header.text_offset, header.image_size, header.flags) == (0x80000, len(image), 0xA)


def test_gzipped_image_is_decompressed() -> None:
    image = make_image()
    packed = gzip.compress(image)
    assert detect_format(packed) is KernelFormat.GZIP
    assert extract_image(packed) == image


@pytest.mark.parametrize(("name", "compress"), [
    (b"gzip", gzip.compress),
    (b"xzkern", lambda data: lzma.compress(data, format=lzma.FORMAT_XZ)),
    (b"lzma", lambda data: lzma.compress(data, format=lzma.FORMAT_ALONE)),
])
def test_zboot_payload_is_the_image(name: bytes, compress: object) -> None:
    image = make_image(text_offset=0)
    assert callable(compress)
    zboot = make_zboot(compress(image), name)
    assert detect_format(zboot) is KernelFormat.ZBOOT
    assert zboot_compression(zboot) == name.decode()
    assert extract_image(zboot) == image


def test_zboot_with_unsupported_compression_names_it() -> None:
    zboot = make_zboot(b"\x28\xb5\x2f\xfd" + b"x" * 32, b"zstd22")
    with pytest.raises(ImageFormatError, match="'zstd22'; supported: gzip, xz, lzma"):
        extract_image(zboot)


def test_zboot_payload_past_the_end_is_refused() -> None:
    zboot = make_zboot(gzip.compress(make_image()), b"gzip", size=1 << 20)
    with pytest.raises(ImageFormatError, match="outside the"):
        extract_image(zboot)


def test_zboot_whose_payload_is_not_an_image_is_refused() -> None:
    zboot = make_zboot(gzip.compress(b"\0" * 200), b"gzip")
    with pytest.raises(ImageFormatError, match="not an arm64 kernel"):
        extract_image(zboot)


def test_corrupt_gzip_payload_is_refused() -> None:
    zboot = make_zboot(b"\x1f\x8b\x08\x00garbage-garbage", b"gzip")
    with pytest.raises(ImageFormatError, match="corrupt"):
        extract_image(zboot)


def test_foreign_file_is_refused_with_its_first_bytes() -> None:
    with pytest.raises(ImageFormatError, match="starts with 7f454c46"):
        detect_format(b"\x7fELF" + b"\0" * 100)
