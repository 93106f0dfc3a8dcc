"""AML statements and expressions: control flow, Store, arithmetic, logic, calls."""

from __future__ import annotations

from collections.abc import Sequence

from vcpuhp.acpi.aml.base import Aml, Operand, encode_terms, operand, with_pkg_length
from vcpuhp.acpi.aml.encoding import NULL_NAME, AmlEncodingError, name_string


def _target(target: Aml | None) -> bytes:
    return target.encode() if target is not None else bytes([NULL_NAME])


class _Simple(Aml):
    """An opcode followed by fixed operands."""

    opcode: bytes = b""

    def __init__(self, *operands: Operand) -> None:
        self.operands = operands

    def encode(self) -> bytes:
        return self.opcode + b"".join(operand(o) for o in self.operands)


# -- control flow --------------------------------------------------------------------------


class If(Aml):
    """``If (predicate) {terms}``, followed by ``Else {orelse}`` when ``orelse`` is given."""

    def __init__(
        self, predicate: Operand, *terms: Aml, orelse: Sequence[Aml] | None = None
    ) -> None:
        self.predicate = predicate
        self.terms = list(terms)
        self.orelse = orelse

    def encode(self) -> bytes:
        out = with_pkg_length(b"\xa0", operand(self.predicate) + encode_terms(self.terms))
        if self.orelse is not None:
            out += Else(*self.orelse).encode()
        return out


class Else(Aml):
    """``Else {terms}`` (must follow an ``If``)."""

    def __init__(self, *terms: Aml) -> None:
        self.terms = list(terms)

    def encode(self) -> bytes:
        return with_pkg_length(b"\xa1", encode_terms(self.terms))


class While(Aml):
    """``While (predicate) {terms}``."""

    def __init__(self, predicate: Operand, *terms: Aml) -> None:
        self.predicate = predicate
        self.terms = list(terms)

    def encode(self) -> bytes:
        return with_pkg_length(b"\xa2", operand(self.predicate) + encode_terms(self.terms))


class Return(_Simple):
    """``Return (value)``."""

    opcode = b"\xa4"

    def __init__(self, value: Operand) -> None:
        super().__init__(value)


class Break(_Simple):
    """``Break``."""

    opcode = b"\xa5"

    def __init__(self) -> None:
        super().__init__()


class Noop(_Simple):
    """``Noop``."""

    opcode = b"\xa3"

    def __init__(self) -> None:
        super().__init__()


class Sleep(_Simple):
    """``Sleep (milliseconds)``."""

    opcode = b"\x5b\x22"

    def __init__(self, milliseconds: Operand) -> None:
        super().__init__(milliseconds)


class Notify(_Simple):
    """``Notify (object, value)``."""

    opcode = b"\x86"

    def __init__(self, target: Aml, value: Operand) -> None:
        super().__init__(target, value)


# -- synchronisation ------------------------------------------------------------------------


class Acquire(Aml):
    """``Acquire (mutex, timeout)``; ``0xFFFF`` waits forever."""

    def __init__(self, mutex: Aml, timeout: int = 0xFFFF) -> None:
        if not 0 <= timeout <= 0xFFFF:
            raise AmlEncodingError(f"Acquire timeout {timeout} is out of range 0-0xFFFF")
        self.mutex = mutex
        self.timeout = timeout

    def encode(self) -> bytes:
        return b"\x5b\x23" + self.mutex.encode() + self.timeout.to_bytes(2, "little")


class Release(_Simple):
    """``Release (mutex)``."""

    opcode = b"\x5b\x27"

    def __init__(self, mutex: Aml) -> None:
        super().__init__(mutex)


# -- data movement and conversion -------------------------------------------------------------


class Store(_Simple):
    """``Store (source, destination)``."""

    opcode = b"\x70"

    def __init__(self, source: Operand, destination: Aml) -> None:
        super().__init__(source, destination)


class _WithTarget(Aml):
    """An opcode, operands and an optional target (``NullName`` when absent)."""

    opcode: bytes = b""

    def __init__(self, *operands: Operand, target: Aml | None = None) -> None:
        self.operands = operands
        self.target = target

    def encode(self) -> bytes:
        return self.opcode + b"".join(operand(o) for o in self.operands) + _target(self.target)


class _Binary(_WithTarget):
    def __init__(self, left: Operand, right: Operand, target: Aml | None = None) -> None:
        super().__init__(left, right, target=target)


class _Unary(_WithTarget):
    def __init__(self, value: Operand, target: Aml | None = None) -> None:
        super().__init__(value, target=target)


class ToBuffer(_Unary):
    """``ToBuffer (value, target)``."""

    opcode = b"\x96"


class ToInteger(_Unary):
    """``ToInteger (value, target)``."""

    opcode = b"\x99"


class Concatenate(_Binary):
    """``Concatenate (left, right, target)``."""

    opcode = b"\x73"


class Index(_Binary):
    """``Index (object, index, target)``: a reference to an element."""

    opcode = b"\x88"


class DerefOf(_Simple):
    """``DerefOf (reference)``."""

    opcode = b"\x83"

    def __init__(self, reference: Operand) -> None:
        super().__init__(reference)


class SizeOf(_Simple):
    """``SizeOf (object)``."""

    opcode = b"\x87"

    def __init__(self, obj: Aml) -> None:
        super().__init__(obj)


# -- arithmetic ---------------------------------------------------------------------------------


class Add(_Binary):
    """``Add (left, right, target)``."""

    opcode = b"\x72"


class Subtract(_Binary):
    """``Subtract (left, right, target)``."""

    opcode = b"\x74"


class Multiply(_Binary):
    """``Multiply (left, right, target)``."""

    opcode = b"\x77"


class And(_Binary):
    """``And (left, right, target)``."""

    opcode = b"\x7b"


class Or(_Binary):
    """``Or (left, right, target)``."""

    opcode = b"\x7d"


class Xor(_Binary):
    """``Xor (left, right, target)``."""

    opcode = b"\x7f"


class ShiftLeft(_Binary):
    """``ShiftLeft (value, count, target)``."""

    opcode = b"\x79"


class ShiftRight(_Binary):
    """``ShiftRight (value, count, target)``."""

    opcode = b"\x7a"


class Not(_Unary):
    """``Not (value, target)``: bitwise complement."""

    opcode = b"\x80"


class Increment(_Simple):
    """``Increment (variable)``."""

    opcode = b"\x75"

    def __init__(self, variable: Aml) -> None:
        super().__init__(variable)


class Decrement(_Simple):
    """``Decrement (variable)``."""

    opcode = b"\x76"

    def __init__(self, variable: Aml) -> None:
        super().__init__(variable)


# -- logic ----------------------------------------------------------------------------------------


class _Logical(_Simple):
    def __init__(self, left: Operand, right: Operand) -> None:
        super().__init__(left, right)


class LAnd(_Logical):
    """``LAnd (left, right)``."""

    opcode = b"\x90"


class LOr(_Logical):
    """``LOr (left, right)``."""

    opcode = b"\x91"


class LEqual(_Logical):
    """``LEqual (left, right)``."""

    opcode = b"\x93"


class LGreater(_Logical):
    """``LGreater (left, right)``."""

    opcode = b"\x94"


class LLess(_Logical):
    """``LLess (left, right)``."""

    opcode = b"\x95"


class LNotEqual(_Logical):
    """``LNotEqual (left, right)``: encoded ``LNot (LEqual (...))``."""

    opcode = b"\x92\x93"


class LLessEqual(_Logical):
    """``LLessEqual (left, right)``: encoded ``LNot (LGreater (...))``."""

    opcode = b"\x92\x94"


class LGreaterEqual(_Logical):
    """``LGreaterEqual (left, right)``: encoded ``LNot (LLess (...))``."""

    opcode = b"\x92\x95"


class LNot(_Simple):
    """``LNot (value)``."""

    opcode = b"\x92"

    def __init__(self, value: Operand) -> None:
        super().__init__(value)


# -- method invocation -----------------------------------------------------------------------------


class Call(Aml):
    r"""A method invocation: ``\_SB.CPUS.CSTA (Arg0)``.

    The callee's argument count is not encoded; it must match the method's
    declaration for the AML to parse.
    """

    def __init__(self, method: str, *args: Operand) -> None:
        if len(args) > 7:
            raise AmlEncodingError(f"{method} is called with {len(args)} arguments; at most 7")
        self.method = method
        self.args = args

    def encode(self) -> bytes:
        return name_string(self.method) + b"".join(operand(a) for a in self.args)

