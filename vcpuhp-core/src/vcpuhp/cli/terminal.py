"""Reading monitor lines: GNU readline editing and history on a terminal, plain lines otherwise.

On a terminal, arrow keys, history (up/down, Ctrl-R) and line editing work
as in any readline program, ``Tab`` completes monitor commands, and the
prompt with the text typed so far can be redrawn after asynchronous output
(:meth:`LineInput.redraw_text`, used by :class:`~vcpuhp.cli.output.OutputWriter`).
History lives for the session only. The terminal's settings are restored on
exit (:meth:`LineInput.restore`), even if the command ends while a line is
being read.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any, TextIO

PROMPT = "(vcpuhp) "


class LineInput:
    """Monitor input from ``stream`` (``None``: stdin is closed, input is at its end)."""

    def __init__(self, stream: TextIO | None, completions: Sequence[str] = (),
                 prompt: str = PROMPT) -> None:
        self.prompt = prompt
        self._stream = stream
        self.interactive = stream is not None and _isatty(stream)
        self._readline: ModuleType | None = None
        self._saved_termios: Any = None
        self._reading = threading.Event()
        if self.interactive:
            assert stream is not None
            self._saved_termios = _termios_state(stream)
            self._readline = _load_readline(list(completions))

    def read(self) -> str | None:
        """The next line without its newline, or ``None`` at end of input."""
        if self._stream is None:
            return None
        if not self.interactive:
            try:
                line = self._stream.readline()
            except (OSError, ValueError):
                return None
            return line.rstrip("\n") if line else None
        self._reading.set()
        try:
            return input(self.prompt)
        except EOFError:
            return None
        finally:
            self._reading.clear()

    def redraw_text(self) -> str | None:
        """The prompt and what has been typed, while a line is being read; else ``None``."""
        if not self._reading.is_set():
            return None
        typed = self._readline.get_line_buffer() if self._readline is not None else ""
        return f"{self.prompt}{typed}"

    def restore(self) -> None:
        """Put the terminal back as it was when the monitor started."""
        if self._saved_termios is None or self._stream is None:
            return
        import termios

        with contextlib.suppress(OSError, termios.error, ValueError):
            termios.tcsetattr(self._stream.fileno(), termios.TCSADRAIN, self._saved_termios)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False


def _termios_state(stream: TextIO) -> Any:
    try:
        import termios

        return termios.tcgetattr(stream.fileno())
    except (ImportError, OSError, ValueError):
        return None


def _load_readline(words: list[str]) -> ModuleType | None:
    """Import GNU readline (``input()`` then edits and keeps history) with completion."""
    try:
        import readline
    except ImportError:  # not on every platform: plain input() still works
        return None

    def complete(text: str, state: int) -> str | None:
        line = readline.get_line_buffer()
        matches = [w for w in words if w.startswith(line)] if line else list(words)
        found = [m[len(line) - len(text):] for m in matches]
        return found[state] if state < len(found) else None

    readline.set_completer(complete)
    readline.set_completer_delims(" ")
    readline.parse_and_bind("tab: complete")
    readline.set_history_length(1000)
    return readline


__all__ = ["PROMPT", "LineInput"]
