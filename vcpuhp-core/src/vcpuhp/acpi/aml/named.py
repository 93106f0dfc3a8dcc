"""Namespace modifiers and named objects: Name, Scope, Device, Method, regions, fields, mutexes."""

from __future__ import annotations

from enum import IntEnum

from vcpuhp.acpi.aml.base import Aml, Operand, encode_terms, operand, with_pkg_length
from vcpuhp.acpi.aml.data import DataValue, encode_data
from vcpuhp.acpi.aml.encoding import AmlEncodingError, name_seg, name_string, pkg_length


class Name(Aml):
    """``Name (name, value)``."""

    def __init__(self, name: str, value: DataValue) -> None:
        self.name = name
        self.value = value

    def encode(self) -> bytes:
        return b"\x08" + name_string(self.name) + encode_data(self.value)


class _NamedBlock(Aml):
    """A named object whose body is a list of terms: ``Opcode PkgLength NameString TermList``."""

    OPCODE: bytes = b""

    def __init__(self, name: str, *terms: Aml) -> None:
        self.name = name
        self.terms = list(terms)

    def append(self, term: Aml) -> None:
        """Add ``term`` to the body."""
        self.terms.append(term)

    def encode(self) -> bytes:
        return with_pkg_length(self.OPCODE, name_string(self.name) + encode_terms(self.terms))


class Scope(_NamedBlock):
    """``Scope (name) {terms}``."""

    OPCODE = b"\x10"


class Device(_NamedBlock):
    """``Device (name) {terms}``."""

    OPCODE = b"\x5b\x82"


class Method(Aml):
    """``Method (name, args, Serialized|NotSerialized, sync_level) {terms}``."""

    def __init__(
        self, name: str, args: int, *terms: Aml, serialized: bool = False, sync_level: int = 0
    ) -> None:
        if not 0 <= args <= 7:
            raise AmlEncodingError(f"method {name} takes {args} arguments; AML allows 0-7")
        if not 0 <= sync_level <= 15:
            raise AmlEncodingError(f"sync level {sync_level} is out of range 0-15")
        self.name = name
        self.args = args
        self.serialized = serialized
        self.sync_level = sync_level
        self.terms = list(terms)

    def append(self, term: Aml) -> None:
        """Add ``term`` to the body."""
        self.terms.append(term)

    def encode(self) -> bytes:
        flags = self.args | (0x08 if self.serialized else 0) | (self.sync_level << 4)
        body = name_string(self.name) + bytes([flags]) + encode_terms(self.terms)
        return with_pkg_length(b"\x14", body)


class RegionSpace(IntEnum):
    """Operation region address spaces (ACPI 6.5 table 5.156)."""

    SYSTEM_MEMORY = 0x00
    SYSTEM_IO = 0x01
    PCI_CONFIG = 0x02
    EMBEDDED_CONTROL = 0x03
    SMBUS = 0x04
    SYSTEM_CMOS = 0x05
    PCI_BAR_TARGET = 0x06


class OperationRegion(Aml):
    """``OperationRegion (name, space, offset, length)``."""

    def __init__(self, name: str, space: RegionSpace, offset: Operand, length: Operand) -> None:
        self.name = name
        self.space = space
        self.offset = offset
        self.length = length

    def encode(self) -> bytes:
        return (
            b"\x5b\x80" + name_string(self.name) + bytes([self.space])
            + operand(self.offset) + operand(self.length)
        )


class FieldAccess(IntEnum):
    """A field's access type (``AnyAcc``, ``ByteAcc``...)."""

    ANY = 0
    BYTE = 1
    WORD = 2
    DWORD = 3
    QWORD = 4
    BUFFER = 5


class FieldLock(IntEnum):
    """Whether accesses take the global lock (``NoLock`` / ``Lock``)."""

    NO_LOCK = 0
    LOCK = 1


class FieldUpdate(IntEnum):
    """What a partial write does with the unwritten bits of the access unit."""

    PRESERVE = 0
    WRITE_AS_ONES = 1
    WRITE_AS_ZEROS = 2


class FieldUnit:
    """A named field element ``name, bits``."""

    def __init__(self, name: str, bits: int) -> None:
        if bits <= 0:
            raise AmlEncodingError(f"field {name} must be at least one bit wide, not {bits}")
        self.name = name
        self.bits = bits


class Reserved:
    """An unnamed gap of ``bits`` bits (ASL ``, bits``)."""

    def __init__(self, bits: int) -> None:
        if bits <= 0:
            raise AmlEncodingError(f"a reserved field must be at least one bit, not {bits}")
        self.bits = bits


class Offset:
    """ASL ``Offset (byte)``: skip to a byte offset; compiled to a reserved gap."""

    def __init__(self, byte: int) -> None:
        self.byte = byte


FieldElement = FieldUnit | Reserved | Offset


class Field(Aml):
    """``Field (region, access, lock, update) {elements}``."""

    def __init__(
        self,
        region: str,
        *elements: FieldElement,
        access: FieldAccess = FieldAccess.BYTE,
        lock: FieldLock = FieldLock.NO_LOCK,
        update: FieldUpdate = FieldUpdate.PRESERVE,
    ) -> None:
        self.region = region
        self.elements = elements
        self.access = access
        self.lock = lock
        self.update = update

    def encode(self) -> bytes:
        flags = self.access | (self.lock << 4) | (self.update << 5)
        body = bytearray(name_string(self.region))
        body.append(flags)
        position = 0
        for element in self.elements:
            if isinstance(element, Offset):
                target = element.byte * 8
                if target < position:
                    raise AmlEncodingError(
                        f"Offset ({element.byte:#x}) goes backwards from bit {position}"
                    )
                if target > position:
                    body += b"\x00" + pkg_length(target - position, includes_self=False)
                position = target
            elif isinstance(element, Reserved):
                body += b"\x00" + pkg_length(element.bits, includes_self=False)
                position += element.bits
            else:
                body += name_seg(element.name)
                body += pkg_length(element.bits, includes_self=False)
                position += element.bits
        return with_pkg_length(b"\x5b\x81", bytes(body))


class Mutex(Aml):
    """``Mutex (name, sync_level)``."""

    def __init__(self, name: str, sync_level: int = 0) -> None:
        if not 0 <= sync_level <= 15:
            raise AmlEncodingError(f"sync level {sync_level} is out of range 0-15")
        self.name = name
        self.sync_level = sync_level

    def encode(self) -> bytes:
        return b"\x5b\x01" + name_string(self.name) + bytes([self.sync_level])
