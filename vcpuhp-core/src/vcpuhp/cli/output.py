"""The command's output path: lines written by a thread of their own, never blocking.

Guest console lines and machine events are printed from event listeners;
if printing blocked (stdout on a pipe nobody reads), every listener would
stall behind it, QMP events included. :class:`OutputWriter` takes lines
without ever blocking, writes them in order on its own thread, and when the
reader falls more than :data:`MAX_QUEUED_LINES` behind drops the oldest
queued lines and says so (``... 312 lines dropped: output is not being
read``) once the stream drains again.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Final, TextIO, cast

MAX_QUEUED_LINES: Final = 1000
"""Lines kept for a stream that is not being read; older ones are dropped and counted."""
_CLEAR_LINE: Final = "\r\x1b[K"


class OutputWriter:
    """Writes lines to ``stream`` in order from a writer thread.

    :param redraw: for an interactive monitor: returns the prompt and the
        text typed so far while a line is being read (else ``None``); lines
        written meanwhile first clear the input line and then redraw it, so
        the prompt is never buried under asynchronous output.
    """

    def __init__(self, stream: TextIO | None, *, max_lines: int = MAX_QUEUED_LINES,
                 redraw: Callable[[], str | None] | None = None) -> None:
        self._stream = stream
        self._fd = _raw_fd(stream)
        self._redraw = redraw
        self._max_lines = max_lines
        self._cond = threading.Condition()
        self._lines: deque[str] = deque()
        self._dropped_unreported = 0
        self.dropped = 0
        """Lines dropped so far because the stream was not read."""
        self._closing = False
        self._broken = stream is None
        self._thread = threading.Thread(target=self._run, name="vcpuhp-output", daemon=True)
        self._thread.start()

    def write_line(self, text: str) -> None:
        """Queue ``text`` (one or more lines, without the final newline); never blocks."""
        with self._cond:
            if self._broken or self._closing:
                return
            if len(self._lines) >= self._max_lines:
                self._lines.popleft()
                self.dropped += 1
                self._dropped_unreported += 1
            self._lines.append(text)
            self._cond.notify()

    def stream(self) -> TextIO:
        """A text stream whose complete lines go through this writer (for ``print``)."""
        return cast(TextIO, _LineStream(self))

    def close(self, timeout: float = 2.0) -> bool:
        """Write what is queued, for at most ``timeout`` seconds; ``False`` if the stream
        did not take it all in time (the rest is abandoned with the thread)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._lines and not self._closing:
                    self._cond.wait()
                if not self._lines:
                    return
                batch = list(self._lines)
                self._lines.clear()
                dropped, self._dropped_unreported = self._dropped_unreported, 0
            if dropped:
                batch.insert(0, f"... {dropped} lines dropped: output is not being read")
            if not self._emit(batch):
                with self._cond:
                    self._broken = True
                    self._lines.clear()
                return

    def _emit(self, batch: list[str]) -> bool:
        text = "".join(f"{line}\n" for line in batch)
        prompt = self._redraw() if self._redraw is not None else None
        if prompt is not None:
            text = f"{_CLEAR_LINE}{text}{prompt}"
        try:
            if self._fd is not None:
                data = text.encode(errors="replace")
                while data:
                    data = data[os.write(self._fd, data):]
            elif self._stream is not None:
                self._stream.write(text)
                self._stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nobody will read again
            return False
        return True


def _raw_fd(stream: TextIO | None) -> int | None:
    """The stream's file descriptor when writing to it directly is safe, else ``None``.

    Writing the fd directly leaves nothing in Python's buffer, so interpreter
    exit never blocks flushing a pipe nobody reads.
    """
    if stream is None:
        return None
    try:
        fd = stream.fileno()
        stream.flush()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return fd


class _LineStream(io.TextIOBase):
    """``write()`` collects text; each complete line goes to the writer."""

    def __init__(self, writer: OutputWriter) -> None:
        super().__init__()
        self._writer = writer
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._writer.write_line(line)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(Exception):
            super().flush()


__all__ = ["MAX_QUEUED_LINES", "OutputWriter"]
