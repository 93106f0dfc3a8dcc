"""AML data objects: integers, strings, buffers, packages, EISA ids, names and locals."""

from __future__ import annotations

from typing import Final, TypeAlias

from vcpuhp.acpi.aml.base import Aml, with_pkg_length
from vcpuhp.acpi.aml.encoding import (
    ONES_OP,
    AmlEncodingError,
    eisa_id,
    integer,
    name_string,
)

DataValue: TypeAlias = "Aml | int | str | bytes"
"""A data object in ASL shorthand: ``int`` -> Integer, ``str`` -> String, ``bytes`` -> Buffer."""


class Integer(Aml):
    """An integer constant; shortest encoding unless ``width`` (bytes) is given."""

    def __init__(self, value: int, width: int | None = None) -> None:
        self.value = value
        self.width = width

    def encode(self) -> bytes:
        return integer(self.value, width=self.width)


class _Ones(Aml):
    def encode(self) -> bytes:
        return bytes([ONES_OP])


ZERO: Final = Integer(0)
ONE: Final = Integer(1)
ONES: Final[Aml] = _Ones()
"""``Ones``: all bits set (``OnesOp``)."""


class String(Aml):
    """A string constant (ASCII, no NUL inside)."""

    def __init__(self, text: str) -> None:
        if "\0" in text or not text.isascii():
            raise AmlEncodingError(f"AML string {text!r} must be ASCII without NUL")
        self.text = text

    def encode(self) -> bytes:
        return b"\x0d" + self.text.encode("ascii") + b"\0"


class Buffer(Aml):
    """``Buffer (len) {bytes}``: a byte buffer initialised with ``data``."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)

    def encode(self) -> bytes:
        return with_pkg_length(b"\x11", integer(len(self.data)) + self.data)


class Package(Aml):
    """``Package () {elements}`` (up to 255 elements)."""

    def __init__(self, *elements: DataValue) -> None:
        if len(elements) > 255:
            raise AmlEncodingError(f"a Package holds at most 255 elements, not {len(elements)}")
        self.elements = [data_object(element) for element in elements]

    def encode(self) -> bytes:
        body = bytes([len(self.elements)]) + b"".join(e.encode() for e in self.elements)
        return with_pkg_length(b"\x12", body)


class EisaId(Aml):
    """``EISAID ("PNP0A06")``: a compressed EISA id, always a DWord constant."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.value = eisa_id(text)

    def encode(self) -> bytes:
        return integer(self.value, width=4)


class Path(Aml):
    r"""A reference to a named object: ``CSEL``, ``\_SB.CPUS.CSCN``, ``^PRES``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._encoded = name_string(path)

    def encode(self) -> bytes:
        return self._encoded


class _Debug(Aml):
    def encode(self) -> bytes:
        return b"\x5b\x31"


DEBUG: Final[Aml] = _Debug()
"""``Debug``: the debug object; a Store to it is shown by ACPICA's tools and OS logs."""


class Local(Aml):
    """``Local0`` .. ``Local7``."""

    def __init__(self, number: int) -> None:
        if not 0 <= number <= 7:
            raise AmlEncodingError(f"Local{number} does not exist; locals are Local0-Local7")
        self.number = number

    def encode(self) -> bytes:
        return bytes([0x60 + self.number])


class Arg(Aml):
    """``Arg0`` .. ``Arg6``."""

    def __init__(self, number: int) -> None:
        if not 0 <= number <= 6:
            raise AmlEncodingError(f"Arg{number} does not exist; arguments are Arg0-Arg6")
        self.number = number

    def encode(self) -> bytes:
        return bytes([0x68 + self.number])


def data_object(value: DataValue) -> Aml:
    """Coerce ASL shorthand to a term: ``int`` Integer, ``str`` String, ``bytes`` Buffer."""
    if isinstance(value, Aml):
        return value
    if isinstance(value, bool):
        raise TypeError("use an int, not a bool, as an AML data object")
    if isinstance(value, int):
        return Integer(value)
    if isinstance(value, str):
        return String(value)
    return Buffer(value)


def encode_data(value: DataValue) -> bytes:
    """Encode ASL shorthand data (see :func:`data_object`)."""
    return data_object(value).encode()
