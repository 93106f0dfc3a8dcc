"""The QMP schema: types, argument checking, and introspection, from one description.

Commands (:mod:`vcpuhp.qmp.commands`) and events (:mod:`vcpuhp.qmp.events`)
declare their arguments, results and data with the types here. From that
one description come three things that therefore cannot drift apart:

* argument checking, the way QEMU's QAPI input visitor does it: members in
  schema order (missing, then wrong type), then unknown members; QEMU's
  messages (``Parameter 'id' is missing``, ``Invalid parameter type for
  'core-id', expected: integer``, ``Parameter 'x' is unexpected``);
* ``query-commands``;
* ``query-qmp-schema``, in QEMU's ``SchemaInfo`` shape (``qapi/introspect.json``):
  one entry per command, event and type; builtin types by name, every other
  type by a number, as QEMU masks non-ABI type names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from vcpuhp.qmp.wire import QmpError

#: QAPI builtin types and their JSON types (``SchemaInfoBuiltin.json-type``).
BUILTINS: Final = {"str": "string", "int": "int", "bool": "boolean", "number": "number",
                   "any": "value", "null": "null"}
_EXPECTED: Final = {"str": "string", "int": "integer", "bool": "boolean", "number": "number"}
_INT64: Final = range(-(2**63), 2**63)


@dataclass(frozen=True)
class Member:
    """A member of an object type, or of a command's or event's arguments.

    ``type`` names a builtin, an :class:`Enum` or :class:`Struct` of the
    schema, or ``[T]`` for an array of ``T``.
    """

    name: str
    type: str
    optional: bool = False


@dataclass(frozen=True)
class Struct:
    """A QAPI object type."""

    name: str
    members: tuple[Member, ...] = ()


@dataclass(frozen=True)
class Enum:
    """A QAPI enumeration."""

    name: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class CommandSpec:
    """What introspection and checking need of a command."""

    name: str
    args: tuple[Member, ...] = ()
    returns: str | None = None
    """Result type; ``None`` is the empty object ``{}``."""
    open_ended: bool = False
    """Takes members beyond ``args`` (QAPI ``'gen': false``: ``device_add``'s properties)."""


@dataclass(frozen=True)
class EventSpec:
    """What introspection needs of an event: its data members."""

    name: str
    data: tuple[Member, ...] = ()


@dataclass
class Schema:
    """Every type commands and events use, by name."""

    types: dict[str, Struct | Enum] = field(default_factory=dict)

    def add(self, *types: Struct | Enum) -> None:
        """Declare types (a name may be declared once)."""
        for new in types:
            if new.name in self.types or new.name in BUILTINS:
                raise ValueError(f"QMP type {new.name} is declared twice")
            self.types[new.name] = new

    # -- checking ------------------------------------------------------------------------

    def check_arguments(self, arguments: Mapping[str, object], command: CommandSpec) -> None:
        """Check ``arguments`` against ``command.args`` (QEMU's order and messages)."""
        known = set()
        for member in command.args:
            known.add(member.name)
            if member.name not in arguments:
                if not member.optional:
                    raise QmpError(f"Parameter '{member.name}' is missing")
                continue
            self.check_value(member.name, arguments[member.name], member.type)
        if not command.open_ended:
            for name in arguments:
                if name not in known:
                    raise QmpError(f"Parameter '{name}' is unexpected")

    def check_value(self, name: str, value: object, type_name: str) -> None:
        """Raise :class:`QmpError` unless ``value`` is a JSON value of type ``type_name``."""
        if type_name.startswith("["):
            if not isinstance(value, list):
                raise QmpError(f"Invalid parameter type for '{name}', expected: array")
            for index, item in enumerate(value):
                self.check_value(f"{name}[{index}]", item, type_name[1:-1])
            return
        if type_name in BUILTINS:
            check_builtin(name, value, type_name)
            return
        declared = self.types[type_name]
        if isinstance(declared, Enum):
            check_builtin(name, value, "str")
            if value not in declared.values:
                raise QmpError(f"Parameter '{name}' does not accept value '{value}'")
            return
        if not isinstance(value, dict):
            raise QmpError(f"Invalid parameter type for '{name}', expected: object")
        self.check_arguments(value, CommandSpec(name, declared.members))

    # -- introspection -------------------------------------------------------------------

    def introspect(self, commands: Iterable[CommandSpec],
                   events: Iterable[EventSpec]) -> list[dict[str, Any]]:
        """The ``query-qmp-schema`` result: commands, events, then the types they use."""
        names = _Masks()
        entities: list[dict[str, Any]] = []
        for command in commands:
            info: dict[str, Any] = {"name": command.name, "meta-type": "command",
                                    "arg-type": names.object(command.args),
                                    "ret-type": names.of(command.returns or "")}
            entities.append(info)
        for event in events:
            entities.append({"name": event.name, "meta-type": "event",
                             "arg-type": names.object(event.data)})
        done: set[str] = set()
        while len(done) < len(names.pending):
            for type_name in list(names.pending):
                if type_name not in done:
                    done.add(type_name)
                    entities.append(self._type_info(type_name, names))
        return entities

    def _type_info(self, type_name: str, names: _Masks) -> dict[str, Any]:
        shown = names.pending[type_name]
        if type_name.startswith("{"):  # an implicit object: arguments or event data
            return {"name": shown, "meta-type": "object",
                    "members": [_member_info(m, names) for m in names.implicit[type_name]]}
        if type_name.startswith("["):
            return {"name": shown, "meta-type": "array",
                    "element-type": names.of(type_name[1:-1])}
        if type_name in BUILTINS:
            return {"name": type_name, "meta-type": "builtin", "json-type": BUILTINS[type_name]}
        declared = self.types[type_name]
        if isinstance(declared, Enum):
            return {"name": shown, "meta-type": "enum",
                    "members": [{"name": v} for v in declared.values],
                    "values": list(declared.values)}
        return {"name": shown, "meta-type": "object",
                "members": [_member_info(m, names) for m in declared.members]}


def _member_info(member: Member, names: _Masks) -> dict[str, Any]:
    info: dict[str, Any] = {"name": member.name, "type": names.of(member.type)}
    if member.optional:
        info["default"] = None
    return info


class _Masks:
    """Names types as QEMU's introspection does: builtins by name, others by number."""

    def __init__(self) -> None:
        self.pending: dict[str, str] = {}
        """Type key -> name shown, in the order first used."""
        self.implicit: dict[str, tuple[Member, ...]] = {}
        self._next = 0

    def of(self, type_name: str) -> str:
        """The shown name of ``type_name`` (``""``: the empty object)."""
        if not type_name:
            return self.object(())
        if type_name not in self.pending:
            if type_name in BUILTINS:
                shown = type_name
            elif type_name.startswith("["):
                shown = f"[{self.of(type_name[1:-1])}]"
            else:
                shown = self._number()
            self.pending[type_name] = shown
        return self.pending[type_name]

    def object(self, members: Sequence[Member]) -> str:
        """The shown name of an implicit object type with ``members`` (shared when equal)."""
        key = "{" + ",".join(f"{m.name}:{m.type}:{m.optional}" for m in members) + "}"
        if key not in self.pending:
            self.implicit[key] = tuple(members)
            self.pending[key] = self._number()
        return self.pending[key]

    def _number(self) -> str:
        shown = str(self._next)
        self._next += 1
        return shown


def check_builtin(name: str, value: object, kind: str) -> None:
    """Raise unless ``value`` is a JSON value of builtin QAPI type ``kind``."""
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and value in _INT64
    elif kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "str":
        ok = isinstance(value, str)
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "null":
        ok = value is None
    else:
        ok = True
    if not ok:
        raise QmpError(f"Invalid parameter type for '{name}', expected: {_EXPECTED[kind]}")


def qemu_integer(name: str, value: object, bits: int = 32) -> int:
    """A device property integer as QMP ``device_add`` took it in QEMU 6.2-9.1.

    Those releases passed ``device_add`` arguments through QemuOpts: a JSON
    number was printed (``%.17g`` for a double, so ``4.0`` became ``4``) and
    every value was then parsed like the command line's, with
    ``qemu_strtoi64(..., base 0)``: decimal, ``0x`` hex, a leading ``0``
    for octal, an optional sign, nothing after the digits. QEMU 9.2 removed
    that (deprecated since 6.2) and takes only JSON integers; vcpuhp keeps
    accepting what 6.2-9.1 accepted, as management tools still send it.
    Booleans, ``null``, arrays and objects are refused with QEMU 9.2's
    message (6.2-9.1 turned booleans into ``on``/``off`` and ignored the others).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise QmpError(f"Invalid parameter type for '{name}', expected: integer")
    if isinstance(value, float):
        text = f"{value:.17g}"
    elif isinstance(value, int):
        text = str(value)
    else:
        text = value
    number = _strtoi64(text)
    if number is None:
        raise QmpError(f"Parameter '{name}' expects integer")
    if not -(2 ** (bits - 1)) <= number < 2 ** (bits - 1):
        raise QmpError(f"Parameter '{name}' expects int{bits}")
    return number


def _strtoi64(text: str) -> int | None:
    """``qemu_strtoi64(text, NULL, 0, ...)``: the whole text must be one integer."""
    body = text.lstrip(" \t\n\v\f\r")
    sign = -1 if body.startswith("-") else 1
    if body[:1] in "+-" and body:
        body = body[1:]
    if body[:2].lower() == "0x":
        digits, base = body[2:], 16
    elif len(body) > 1 and body.startswith("0"):
        digits, base = body[1:], 8
    else:
        digits, base = body, 10
    if not digits or not all(c in "0123456789abcdefABCDEF"[: base + (6 if base == 16 else 0)]
                             for c in digits):
        return None
    value = sign * int(digits, base)
    return value if value in _INT64 else None


__all__ = [
    "BUILTINS",
    "CommandSpec",
    "Enum",
    "EventSpec",
    "Member",
    "Schema",
    "Struct",
    "check_builtin",
    "qemu_integer",
]
