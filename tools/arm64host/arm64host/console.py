"""Reading the emulated host's serial console: output to pass on, and the init's markers.

The init prints its markers on lines of their own, each carrying a nonce that
is new for every run, so nothing the command prints (or an earlier run left in
a log) can be taken for a marker::

    ARM64HOST-<nonce> READY          the command is about to start
    ARM64HOST-<nonce> EXIT <status>  the command ended with <status>
    ARM64HOST-<nonce> FAIL <reason>  the init could not set up the run

Everything else is the command's output (and kernel messages) and is passed
on as it arrives. A marker may follow other text on the same line (a kernel
message printed mid-line), so it is searched for anywhere in a line; the text
before it is passed on.
"""

from __future__ import annotations

import codecs
import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Final

MARKER_PREFIX: Final = "ARM64HOST-"
PANIC_TEXT: Final = "Kernel panic - not syncing"
TAIL_LINES: Final = 40


def new_nonce() -> str:
    """A fresh marker nonce (16 hex digits)."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Ready:
    """The init reached the command."""


@dataclass(frozen=True)
class Exited:
    """The command ended; ``status`` is its exit status (0-255)."""

    status: int


@dataclass(frozen=True)
class InitFailed:
    """The init could not set up the run (a module, a share, the command's directory)."""

    reason: str


@dataclass(frozen=True)
class Panicked:
    """The kernel panicked; ``line`` is the panic message."""

    line: str


ConsoleEvent = Ready | Exited | InitFailed | Panicked


@dataclass
class Feed:
    """What one chunk of console bytes gave: text to pass on and the events seen."""

    output: str = ""
    events: list[ConsoleEvent] = field(default_factory=list)


class ConsoleParser:
    """Turns console bytes into passed-on text and :data:`ConsoleEvent`\\ s.

    Complete lines are passed on at once; an incomplete line is passed on as
    it comes unless it could still become a marker, so a command's progress
    output (pytest's dots) shows without waiting for the newline.
    """

    def __init__(self, nonce: str, tail_lines: int = TAIL_LINES) -> None:
        self._token = f"{MARKER_PREFIX}{nonce} "
        self._marker = re.compile(
            re.escape(self._token) + r"(?:(READY)|EXIT (\d{1,3})|FAIL ?(.*?))\s*$")
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._line = ""
        self._passed = 0  # characters of self._line already passed on
        self._blank_held = False  # an empty line not passed on yet (may precede a marker)
        self._exited = False
        self.tail: deque[str] = deque(maxlen=tail_lines)

    def feed(self, data: bytes) -> Feed:
        """Take the next console bytes."""
        result = Feed()
        text = self._decoder.decode(data)
        while text:
            newline = text.find("\n")
            if newline < 0:
                self._line += text
                break
            self._line += text[:newline]
            text = text[newline + 1:]
            self._complete_line(result)
        self._pass_partial(result)
        return result

    def finish(self) -> Feed:
        """The end of the stream: an incomplete last line counts as a line."""
        result = Feed()
        self._line += self._decoder.decode(b"", final=True)
        if self._line:
            self._complete_line(result)
        return result

    def _complete_line(self, result: Feed) -> None:
        # The tty writes "\r\n"; a lone "\r" (a progress rewrite) stays in the output.
        line, passed = self._line.rstrip("\r"), self._passed
        passed = min(passed, len(line))
        self._line, self._passed = "", 0
        match = self._marker.search(line)
        if match is None:
            if self._exited:  # the power-off messages after EXIT are not the command's
                self.tail.append(line)
                return
            if not line:
                if self._blank_held:
                    result.output += "\n"
                self._blank_held = True
                return
            if self._blank_held:
                result.output += "\n"
                self._blank_held = False
            result.output += line[passed:] + "\n"
            self.tail.append(line)
            if PANIC_TEXT in line:
                result.events.append(Panicked(line.strip()))
            return
        self._blank_held = False  # the init's newline before a marker is not output
        before = line[:match.start()]
        if before:  # end the command's unterminated last line
            result.output += before[passed:] + "\n"
        if before.strip():
            self.tail.append(before)
        if match[1]:
            result.events.append(Ready())
        elif match[2] is not None:
            self._exited = True
            result.events.append(Exited(min(int(match[2]), 255)))
        else:
            reason = match[3] or "no reason given"
            self.tail.append(f"init: {reason}")
            result.events.append(InitFailed(reason))

    def _pass_partial(self, result: Feed) -> None:
        pending = self._line[self._passed:]
        if not pending or self._exited:
            return
        # Hold back from the first character that could begin the marker token.
        token = self._token
        hold = len(self._line.rstrip("\r"))  # a trailing "\r" may be half of "\r\n"
        start = self._line.find(token[0], self._passed)
        while start >= 0:
            if token.startswith(self._line[start:start + len(token)]):
                hold = start
                break
            start = self._line.find(token[0], start + 1)
        if hold > self._passed:
            if self._blank_held:
                result.output += "\n"
                self._blank_held = False
            result.output += self._line[self._passed:hold]
            self._passed = hold
