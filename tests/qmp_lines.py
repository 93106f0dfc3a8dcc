"""QMP over a unix socket, one JSON message a line, blocking: what the raw test clients share."""

from __future__ import annotations

import json
import socket
from typing import Any


class QmpLines:
    """A connection that reads the greeting, then sends requests and reads messages.

    Every read is bounded by ``timeout`` (``socket.timeout`` fails the test).
    """

    def __init__(self, path: str, timeout: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self._buffer = b""
        self.greeting = self.read()

    def send(self, data: bytes) -> None:
        """Send raw bytes."""
        self.sock.sendall(data)

    def request(self, name: str, arguments: dict[str, Any] | None = None,
                **members: Any) -> None:
        """Send ``{"execute": name, "arguments": ..., **members}`` (its reply is not read)."""
        message: dict[str, Any] = {"execute": name, **members}
        if arguments is not None:
            message["arguments"] = arguments
        self.send(json.dumps(message).encode() + b"\n")

    def read(self) -> dict[str, Any]:
        """The next message (reply or event)."""
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the QMP server closed the connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def close(self) -> None:
        """Hang up."""
        self.sock.close()
