"""The AML term protocol and the coercions every term constructor shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import TypeAlias

from vcpuhp.acpi.aml.encoding import integer, pkg_length


class Aml(ABC):
    """One AML term (or a sequence of them) that encodes itself to bytes."""

    @abstractmethod
    def encode(self) -> bytes:
        """The term's AML byte code."""

    def __bytes__(self) -> bytes:
        return self.encode()


Operand: TypeAlias = "Aml | int"
"""Where a TermArg is expected: a term, or a Python ``int`` for an integer constant."""


class RawAml(Aml):
    """Bytes that are already AML (a pre-encoded term or term list)."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)

    def encode(self) -> bytes:
        return self.data


class TermList(Aml):
    """Terms encoded one after the other (an ASL block's body)."""

    def __init__(self, *terms: Aml) -> None:
        self.terms = list(terms)

    def append(self, term: Aml) -> None:
        """Add ``term`` at the end."""
        self.terms.append(term)

    def encode(self) -> bytes:
        return encode_terms(self.terms)


def encode_terms(terms: Iterable[Aml]) -> bytes:
    """Concatenate the encodings of ``terms``."""
    return b"".join(term.encode() for term in terms)


def operand(value: Operand) -> bytes:
    """Encode a TermArg: a term as itself, an ``int`` as its shortest constant."""
    if isinstance(value, bool):
        raise TypeError("use an int (0 or 1) or Zero/One, not a bool, as an AML operand")
    if isinstance(value, int):
        return integer(value)
    return value.encode()


def with_pkg_length(opcode: bytes, body: bytes) -> bytes:
    """``opcode PkgLength body`` where PkgLength counts itself and ``body``."""
    return opcode + pkg_length(len(body)) + body
