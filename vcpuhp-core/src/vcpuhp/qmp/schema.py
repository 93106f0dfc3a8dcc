"""Checking command arguments the way QEMU's QAPI input visitor does.

Members are checked in schema order (missing, then wrong type), then any
member the schema does not know is reported; the messages are QEMU's:
``Parameter 'id' is missing``, ``Invalid parameter type for 'core-id',
expected: integer``, ``Parameter 'x' is unexpected``. All are ``GenericError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from vcpuhp.qmp.wire import QmpError

Kind = Literal["str", "int", "bool", "array"]
_EXPECTED: Final = {"str": "string", "int": "integer", "bool": "boolean", "array": "array"}
_INT64: Final = range(-(2**63), 2**63)


@dataclass(frozen=True)
class Param:
    """One member of a command's ``arguments``."""

    name: str
    kind: Kind
    optional: bool = False


def check_type(name: str, value: object, kind: Kind) -> None:
    """Raise unless ``value`` is a JSON value of QAPI type ``kind``."""
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and value in _INT64
    elif kind == "str":
        ok = isinstance(value, str)
    elif kind == "bool":
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, list)
    if not ok:
        raise QmpError(f"Invalid parameter type for '{name}', expected: {_EXPECTED[kind]}")


def check_arguments(
    arguments: Mapping[str, object], params: Iterable[Param], *, open_ended: bool = False
) -> None:
    """Check ``arguments`` against ``params``.

    :param open_ended: the command takes further members it checks itself
        (``device_add``'s device properties), so unknown ones are not errors.
    """
    known = set()
    for param in params:
        known.add(param.name)
        if param.name not in arguments:
            if not param.optional:
                raise QmpError(f"Parameter '{param.name}' is missing")
            continue
        check_type(param.name, arguments[param.name], param.kind)
    if not open_ended:
        for name in arguments:
            if name not in known:
                raise QmpError(f"Parameter '{name}' is unexpected")


def check_enum_list(name: str, values: list[object], valid: Iterable[str]) -> list[str]:
    """Check a list of enum strings (``qmp_capabilities``'s ``enable``)."""
    allowed = set(valid)
    for index, value in enumerate(values):
        member = f"{name}[{index}]"
        check_type(member, value, "str")
        if value not in allowed:
            raise QmpError(f"Parameter '{member}' does not accept value '{value}'")
    return [str(v) for v in values]
