"""Synthetic arm64 kernel images for the boot-protocol tests."""

from __future__ import annotations

import struct
from collections.abc import Callable

from vcpuhp.boot.arm64_image import HEADER, IMAGE_MAGIC

MakeImage = Callable[..., bytes]


def make_image_bytes(*, text_offset: int = 0, image_size: int = 0x30_0000, flags: int = 0b1010,
                     body: bytes = b"\x1f\x20\x03\xd5" * 16) -> bytes:
    """A minimal little-endian arm64 ``Image``: the header, then ``body`` (nops)."""
    code0 = 0x91005A4D  # "MZ" + add x13, x18, #0x16, as an EFI-stub kernel starts
    code1 = 0x14000000 | (HEADER.size // 4)  # b past the header
    header = HEADER.pack(code0, code1, text_offset, image_size, flags, 0, 0, 0, IMAGE_MAGIC, 0)
    return header + body


def make_zboot_bytes(payload: bytes, compression: bytes = b"gzip") -> bytes:
    """An EFI zboot wrapper around an already compressed ``payload``."""
    head = bytearray(0x40)
    head[0:2] = b"MZ"
    head[4:8] = b"zimg"
    struct.pack_into("<II", head, 8, len(head), len(payload))
    head[0x18 : 0x18 + len(compression)] = compression
    return bytes(head) + payload
