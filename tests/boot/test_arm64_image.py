"""Reading arm64 Linux kernels: the Image header and the EFI zboot wrapper."""

from __future__ import annotations

import gzip
import lzma

import pytest
from boot_testlib import MakeImage, make_zboot_bytes

from vcpuhp.boot.arm64_image import LEGACY_TEXT_OFFSET, is_arm64_image, parse_kernel
from vcpuhp.errors import ConfigError


def test_a_plain_image_header_is_read(make_image: MakeImage) -> None:
    data = make_image(text_offset=0, image_size=0x40_0000, flags=0b1010)
    kernel = parse_kernel(data, "Image")
    assert (kernel.text_offset, kernel.image_size, kernel.page_size) == (0, 0x40_0000, "4K")
    assert kernel.data == data and kernel.compression is None
    assert is_arm64_image(data)


@pytest.mark.parametrize(("name", "compress"), [
    (b"gzip", gzip.compress),
    (b"xzkern", lambda d: lzma.compress(d, lzma.FORMAT_XZ)),
    (b"lzma", lambda d: lzma.compress(d, lzma.FORMAT_ALONE)),
])
def test_a_zboot_image_is_unwrapped(make_image: MakeImage, name: bytes, compress: object) -> None:
    image = make_image()
    wrapped = make_zboot_bytes(compress(image), name)  # type: ignore[operator]
    assert is_arm64_image(wrapped)
    kernel = parse_kernel(wrapped, "vmlinuz")
    assert kernel.data == image
    assert kernel.compression == name.decode()


def test_an_unsupported_zboot_compression_names_it_and_what_to_do(make_image: MakeImage) -> None:
    wrapped = make_zboot_bytes(b"\x28\xb5\x2f\xfd" + bytes(20), b"zstd")
    with pytest.raises(ConfigError, match=r"vmlinuz: zboot payload uses zstd compression; "
                                          r"supported: gzip, xzkern, lzma.*extract-vmlinux"):
        parse_kernel(wrapped, "vmlinuz")


def test_a_corrupt_or_truncated_zboot_is_refused(make_image: MakeImage) -> None:
    good = make_zboot_bytes(gzip.compress(make_image()))
    with pytest.raises(ConfigError, match="corrupt"):
        parse_kernel(good[:0x40] + b"\x1f\x8b" + bytes(len(good) - 0x42), "vmlinuz")
    with pytest.raises(ConfigError, match="lies outside"):
        parse_kernel(good[:0x50], "vmlinuz")


def test_not_an_image(make_image: MakeImage) -> None:
    assert not is_arm64_image(b"\x7fELF" + bytes(100))
    with pytest.raises(ConfigError, match=r"not an arm64 Linux Image"):
        parse_kernel(b"\x7fELF" + bytes(100), "guest.elf")


def test_big_endian_and_inconsistent_headers_are_refused(make_image: MakeImage) -> None:
    with pytest.raises(ConfigError, match="big-endian"):
        parse_kernel(make_image(flags=0b1011), "Image")
    with pytest.raises(ConfigError, match="image_size 64 is smaller than the file"):
        parse_kernel(make_image(image_size=64), "Image")
    with pytest.raises(ConfigError, match="text_offset 0x123 is not page aligned"):
        parse_kernel(make_image(text_offset=0x123), "Image")


def test_an_old_kernel_without_image_size_gets_the_documented_defaults(
    make_image: MakeImage,
) -> None:
    data = make_image(image_size=0, text_offset=0)
    kernel = parse_kernel(data, "Image")
    assert (kernel.text_offset, kernel.image_size) == (LEGACY_TEXT_OFFSET, len(data))
