"""Cutting the client's byte stream into JSON texts, then decoding them.

QEMU's QMP parser is a streaming JSON parser: a request may span lines and
several may share one. :class:`MessageSplitter` does the same by tracking
strings and bracket nesting, so it needs no newlines between requests. It
adds resynchronisation at newlines: after an error it can't recover from in
place (a mismatched or stray bracket, a request longer than the limit, nesting
deeper than the limit) it discards input up to the next newline, and a raw
newline inside a string ends that request with an error. So one bad line
never eats the next one.

Limits: :data:`MAX_MESSAGE_SIZE` bytes per request (QEMU allows far more,
but no command here needs more than a few hundred bytes; qemu.qmp's own read
buffer is also 64 KiB) and :data:`MAX_NESTING` levels of brackets.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Final

from vcpuhp.qmp.wire import QmpError

MAX_MESSAGE_SIZE: Final = 64 * 1024
MAX_NESTING: Final = 128
_STRING_STOP: Final = re.compile(rb'["\\\n]')
_CONTAINER_STOP: Final = re.compile(rb'[{}\[\]"\n]')
_WHITESPACE: Final = b" \t\r\n"
"""JSON's (and QEMU's lexer's) whitespace: not ``\\x0b`` or ``\\x0c``, which ``\\s`` matches."""
_SCALAR_STOP: Final = re.compile(rb'[ \t\r\n{}\[\]",]')
_COMMA: Final = ord(",")
_CLOSER: Final = {ord("{"): ord("}"), ord("["): ord("]")}
_NEWLINE: Final = ord("\n")
_QUOTE: Final = ord('"')


@dataclass(frozen=True)
class FramingError:
    """Input that could not be cut into a JSON text; becomes a ``GenericError``."""

    desc: str


Frame = bytes | FramingError


class MessageSplitter:
    """Feed bytes as they arrive; get back complete JSON texts and framing errors."""

    def __init__(self, limit: int = MAX_MESSAGE_SIZE, max_nesting: int = MAX_NESTING) -> None:
        self.limit = limit
        self.max_nesting = max_nesting
        self._buf = bytearray()
        self._stack: list[int] = []
        self._in_string = False
        self._escape = False
        self._scalar = False
        self._discarding = False
        self._out: list[Frame] = []

    @property
    def pending(self) -> int:
        """Bytes of an incomplete request held so far."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Consume ``data``; return the requests (and errors) it completed, in order."""
        position = 0
        while position < len(data):
            if self._discarding:
                newline = data.find(b"\n", position)
                if newline < 0:
                    break
                self._discarding = False
                position = newline + 1
            elif self._in_string:
                position = self._string(data, position)
            elif self._scalar:
                position = self._scalar_token(data, position)
            else:
                position = self._structure(data, position)
        out, self._out = self._out, []
        return out

    # -- states ------------------------------------------------------------------------

    def _string(self, data: bytes, position: int) -> int:
        if self._escape:
            self._escape = False
            if data[position] == _NEWLINE:
                self._fail("JSON parse error, newline inside a string", resync=False)
            else:
                self._append(data, position, position + 1)
            return position + 1
        match = _STRING_STOP.search(data, position)
        if match is None:
            self._append(data, position, len(data))
            return len(data)
        stop = match.start()
        if data[stop] == _NEWLINE:
            self._fail("JSON parse error, newline inside a string (missing closing quote?)",
                       resync=False)
        elif self._append(data, position, stop + 1):
            if data[stop] == _QUOTE:
                self._in_string = False
                if not self._stack:
                    self._emit()
            else:
                self._escape = True
        return stop + 1

    def _scalar_token(self, data: bytes, position: int) -> int:
        """A top-level number or literal runs to the next structural byte or whitespace.

        It never ends empty (the byte that started it is not a stop byte), so
        every call either consumes input or emits a frame that did.
        """
        match = _SCALAR_STOP.search(data, position)
        stop = len(data) if match is None else match.start()
        if self._append(data, position, stop) and match is not None:
            assert self._buf, "a top-level scalar is never empty"
            self._emit()
        return stop

    def _structure(self, data: bytes, position: int) -> int:
        byte = data[position]
        if not self._stack:
            if byte in _WHITESPACE:
                return position + 1
            if byte in (ord("}"), ord("]")):
                self._fail(f"JSON parse error, stray '{chr(byte)}'", resync=True)
                return position + 1
            if byte == _COMMA:  # between requests: report it, keep the rest of the line
                self._fail("JSON parse error, stray ','", resync=False)
                return position + 1
            if byte == _QUOTE:
                self._in_string = True
            elif byte not in _CLOSER:
                self._scalar = True
                return position
        if byte in _CLOSER:
            if len(self._stack) >= self.max_nesting:
                self._fail(f"JSON parse error, nesting deeper than {self.max_nesting} levels",
                           resync=True)
                return position + 1
            self._stack.append(_CLOSER[byte])
        elif byte in (ord("}"), ord("]")):
            if byte != self._stack[-1]:
                self._fail(
                    f"JSON parse error, '{chr(byte)}' does not close '{chr(self._opener())}'",
                    resync=True,
                )
                return position + 1
            self._stack.pop()
        elif byte == _QUOTE:
            self._in_string = True
        elif byte != _NEWLINE:
            match = _CONTAINER_STOP.search(data, position)
            stop = len(data) if match is None else match.start()
            self._append(data, position, stop)
            return stop
        if self._append(data, position, position + 1) and not self._stack \
                and not self._in_string:
            self._emit()
        return position + 1

    # -- helpers -----------------------------------------------------------------------

    def _opener(self) -> int:
        closer = self._stack[-1]
        return next(opener for opener, c in _CLOSER.items() if c == closer)

    def _append(self, data: bytes, start: int, stop: int) -> bool:
        """Add ``data[start:stop]``; False (and the request failed) when over the limit."""
        self._buf += data[start:stop]
        if len(self._buf) <= self.limit:
            return True
        at_newline = stop > start and data[stop - 1] == _NEWLINE
        self._fail(
            f"QMP input is longer than {self.limit} bytes; it was discarded up to the end "
            "of its line",
            resync=not at_newline,
        )
        return False

    def _emit(self) -> None:
        self._out.append(bytes(self._buf))
        self._reset()

    def _fail(self, desc: str, *, resync: bool) -> None:
        self._out.append(FramingError(desc))
        self._reset()
        self._discarding = resync

    def _reset(self) -> None:
        self._buf.clear()
        self._stack.clear()
        self._in_string = self._escape = self._scalar = False


def decode(frame: bytes) -> object:
    """Decode one JSON text as QEMU's parser would accept it.

    Rejects invalid UTF-8, ``NaN``/``Infinity``, numbers too large for a double
    (``1e999``: Python would read it as infinity, which JSON cannot carry back
    in a reply) and duplicate object keys.
    Raises :class:`QmpError` (``GenericError``, "JSON parse error, ...").
    """
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QmpError(f"JSON parse error, invalid UTF-8 sequence at byte {exc.start}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                          object_pairs_hook=_unique_keys)
    except RecursionError:
        raise QmpError("JSON parse error, nesting too deep") from None
    except ValueError as exc:
        raise QmpError(f"JSON parse error, {_describe(exc)}") from None


def _describe(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg[:1].lower()}{exc.msg[1:]} at column {exc.colno}"
    return str(exc)


def _reject_constant(name: str) -> object:
    raise ValueError(f"invalid keyword '{name}'")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key '{key}'")
        result[key] = value
    return result
