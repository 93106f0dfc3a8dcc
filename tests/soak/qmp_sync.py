"""A small blocking QMP client for soak tests: commands and the events between them."""

from __future__ import annotations

import json
import socket
import time
from typing import Any


class SyncQmp:
    """Negotiated QMP over a unix socket; every read is bounded by ``timeout``."""

    def __init__(self, path: str, timeout: float = 60.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self._buffer = b""
        self.events: list[dict[str, Any]] = []
        self.greeting = self.read()
        assert self.command("qmp_capabilities") == {}

    @classmethod
    def connect_when_listening(cls, path: str, deadline_s: float = 60.0) -> SyncQmp:
        """Connect once the server listens (a restarted server may still be starting)."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                return cls(path)
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def read(self) -> dict[str, Any]:
        """The next message."""
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP server closed the connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def command(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run a command; its ``return`` value (AssertionError on an error reply)."""
        request: dict[str, Any] = {"execute": name}
        if arguments is not None:
            request["arguments"] = arguments
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            message = self.read()
            if "event" in message:
                self.events.append(message)
                continue
            assert "return" in message, f"{name}: {message}"
            return message["return"]

    def wait_event(self, name: str) -> dict[str, Any]:
        """The first not yet consumed event called ``name`` (waiting for it if needed)."""
        while True:
            for index, event in enumerate(self.events):
                if event["event"] == name:
                    return self.events.pop(index)
            message = self.read()
            if "event" in message:
                self.events.append(message)

    def close(self) -> None:
        """Hang up."""
        self.sock.close()
