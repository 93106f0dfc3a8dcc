"""QMP messages as they travel on the wire (QEMU ``docs/interop/qmp-spec.rst``).

Server greeting, command success and error replies, asynchronous events, the
error classes QEMU uses, and the JSON encoding: one object per line, ended
with ``\\r\\n`` as QEMU's monitor writes it, non-ASCII escaped.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

import vcpuhp

#: The QEMU release whose QMP this server follows (greeting, ``query-version``); the
#: package docstring (:mod:`vcpuhp.qmp`) lists where it deliberately differs.
QEMU_VERSION: Final = (9, 2, 0)
#: The ``package`` string of the greeting and ``query-version``.
PACKAGE: Final = f"vcpuhp {vcpuhp.__version__}"

GENERIC_ERROR: Final = "GenericError"
COMMAND_NOT_FOUND: Final = "CommandNotFound"
DEVICE_NOT_FOUND: Final = "DeviceNotFound"

Message = dict[str, Any]


class NoId:
    """Marks a request that carried no ``id`` (``None`` is a valid id: JSON ``null``)."""

    def __repr__(self) -> str:
        return "NO_ID"


NO_ID: Final = NoId()


class QmpError(Exception):
    """A command failed: becomes ``{"error": {"class": error_class, "desc": desc}}``."""

    def __init__(self, desc: str, error_class: str = GENERIC_ERROR) -> None:
        super().__init__(desc)
        self.desc = desc
        self.error_class = error_class


def version_info() -> Message:
    """The ``VersionInfo`` object of the greeting and ``query-version``."""
    major, minor, micro = QEMU_VERSION
    return {"qemu": {"major": major, "minor": minor, "micro": micro}, "package": PACKAGE}


def greeting() -> Message:
    """The server greeting; no capabilities are offered (no out-of-band execution)."""
    return {"QMP": {"version": version_info(), "capabilities": []}}


class Verbatim:
    """A result sent exactly as it is: its ``null`` members mean ``null``, not absent
    (``query-qmp-schema``'s ``"default": null``)."""

    def __init__(self, value: object) -> None:
        self.value = value


def success(result: object, request_id: object = NO_ID) -> Message:
    """A command's success reply, echoing the request's ``id`` when it had one.

    Members whose value is ``None`` are left out (QEMU omits absent optional
    members), unless the result is :class:`Verbatim`.
    """
    value = result.value if isinstance(result, Verbatim) else drop_absent(result)
    reply: Message = {"return": value}
    if request_id is not NO_ID:
        reply["id"] = request_id
    return reply


def failure(error: QmpError, request_id: object = NO_ID) -> Message:
    """A command's error reply, echoing the request's ``id`` when it had one."""
    reply: Message = {"error": {"class": error.error_class, "desc": error.desc}}
    if request_id is not NO_ID:
        reply["id"] = request_id
    return reply


def event(name: str, data: dict[str, Any] | None = None,
          timestamp: float | None = None) -> Message:
    """An asynchronous event; ``data`` is left out when it has no members (``STOP``)."""
    when = time.time() if timestamp is None else timestamp
    seconds = int(when)
    message: Message = {
        "event": name,
        "timestamp": {"seconds": seconds, "microseconds": int((when - seconds) * 1_000_000)},
    }
    members = drop_absent(data or {})
    if members:
        message["data"] = members
    return message


def drop_absent(value: Any) -> Any:
    """Remove object members whose value is ``None``, at every depth.

    QEMU leaves absent optional members out rather than sending ``null``.
    """
    if isinstance(value, dict):
        return {k: drop_absent(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [drop_absent(v) for v in value]
    return value


def encode(message: Message) -> bytes:
    """One message as sent: compact-ish JSON, ASCII only, ``\\r\\n``-terminated."""
    return (json.dumps(message) + "\r\n").encode("ascii")
