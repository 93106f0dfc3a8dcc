"""Primitive AML encodings: package lengths, name strings and integer constants.

Grammar references are to ACPI 6.5 section 20.2 ("AML Grammar Definition").
"""

from __future__ import annotations

import re
from typing import Final

ZERO_OP: Final = 0x00
ONE_OP: Final = 0x01
ONES_OP: Final = 0xFF
BYTE_PREFIX: Final = 0x0A
WORD_PREFIX: Final = 0x0B
DWORD_PREFIX: Final = 0x0C
QWORD_PREFIX: Final = 0x0E
NULL_NAME: Final = 0x00
DUAL_NAME_PREFIX: Final = 0x2E
MULTI_NAME_PREFIX: Final = 0x2F
ROOT_CHAR: Final = 0x5C
PARENT_PREFIX_CHAR: Final = 0x5E

_MAX_PKG_LENGTH: Final = (1 << 28) - 1
_NAME_SEG_RE: Final = re.compile(r"^[A-Z_][A-Z0-9_]{0,3}$")


class AmlEncodingError(ValueError):
    """A value cannot be represented in AML (bad name, length out of range...)."""


def pkg_length(length: int, *, includes_self: bool = True) -> bytes:
    """Encode a PkgLength.

    With ``includes_self`` (the normal case: Scope, Method, If...), ``length``
    is the size of what follows the PkgLength and the encoded value counts the
    PkgLength bytes as well. Without it (field element widths in a FieldList),
    ``length`` is encoded as given.

    One byte holds 0-63; otherwise the lead byte carries the count of
    following bytes in bits 7:6 and the low nibble in bits 3:0, and each
    following byte eight more bits (up to 2**28 - 1).
    """
    if length < 0:
        raise AmlEncodingError(f"package length {length} is negative")
    for extra in range(4):
        total = length + (extra + 1 if includes_self else 0)
        limit = 0x3F if extra == 0 else (1 << (4 + 8 * extra)) - 1
        if total <= limit:
            if extra == 0:
                return bytes([total])
            out = bytearray([(extra << 6) | (total & 0x0F)])
            out += (total >> 4).to_bytes(extra, "little")
            return bytes(out)
    raise AmlEncodingError(f"package length {length} exceeds the AML maximum {_MAX_PKG_LENGTH}")


def name_seg(segment: str) -> bytes:
    """Encode one NameSeg: a lead character ``A-Z`` or ``_``, padded with ``_`` to 4."""
    if not _NAME_SEG_RE.match(segment):
        raise AmlEncodingError(
            f"{segment!r} is not an AML name segment: 1-4 characters, A-Z or _ first, "
            "then A-Z, 0-9 or _"
        )
    return segment.ljust(4, "_").encode("ascii")


def name_string(path: str) -> bytes:
    r"""Encode a NameString such as ``_UID``, ``\_SB.CPUS``, ``^^PRES.CSEL`` or ``\``.

    A leading ``\`` is the root prefix, each leading ``^`` a parent prefix;
    segments are separated by ``.``. One segment is a bare NameSeg, two use
    DualNamePrefix, more use MultiNamePrefix with a count; none is NullName.
    """
    out = bytearray()
    rest = path
    if rest.startswith("\\"):
        out.append(ROOT_CHAR)
        rest = rest[1:]
    else:
        while rest.startswith("^"):
            out.append(PARENT_PREFIX_CHAR)
            rest = rest[1:]
    segments = rest.split(".") if rest else []
    if len(segments) > 255:
        raise AmlEncodingError(f"name path {path!r} has more than 255 segments")
    encoded = b"".join(name_seg(segment) for segment in segments)
    if not segments:
        out.append(NULL_NAME)
    elif len(segments) == 1:
        out += encoded
    elif len(segments) == 2:
        out.append(DUAL_NAME_PREFIX)
        out += encoded
    else:
        out += bytes([MULTI_NAME_PREFIX, len(segments)])
        out += encoded
    return bytes(out)


def integer(value: int, *, width: int | None = None) -> bytes:
    """Encode an integer constant the way ``iasl`` does.

    Without ``width`` the shortest form is used: ``Zero``, ``One``, then the
    Byte/Word/DWord/QWord prefixes. ``width`` (1, 2, 4 or 8 bytes) forces a
    prefixed constant of that size.
    """
    if not 0 <= value < 1 << 64:
        raise AmlEncodingError(f"integer {value} is outside the AML range 0-2**64-1")
    prefixes = {1: BYTE_PREFIX, 2: WORD_PREFIX, 4: DWORD_PREFIX, 8: QWORD_PREFIX}
    if width is None:
        if value == 0:
            return bytes([ZERO_OP])
        if value == 1:
            return bytes([ONE_OP])
        width = next(w for w in (1, 2, 4, 8) if value < 1 << (8 * w))
    if width not in prefixes:
        raise AmlEncodingError(f"integer width {width} is not one of 1, 2, 4, 8 bytes")
    if value >= 1 << (8 * width):
        raise AmlEncodingError(f"integer {value:#x} does not fit in {width} bytes")
    return bytes([prefixes[width]]) + value.to_bytes(width, "little")


def eisa_id(text: str) -> int:
    """The 32-bit compressed EISA id of ``text`` (``"PNP0A06"`` -> ``0x060AD041``).

    Three upper-case letters (5 bits each, ``A`` = 1) and four hex digits,
    stored big-endian and read back as a little-endian dword.
    """
    if not re.fullmatch(r"[A-Z]{3}[0-9A-F]{4}", text):
        raise AmlEncodingError(
            f"EISA id {text!r} must be three upper-case letters and four hex digits"
        )
    vendor = 0
    for char in text[:3]:
        vendor = (vendor << 5) | (ord(char) - ord("A") + 1)
    value = (vendor << 16) | int(text[3:], 16)
    return int.from_bytes(value.to_bytes(4, "big"), "little")
