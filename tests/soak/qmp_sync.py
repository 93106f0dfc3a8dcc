"""A small blocking QMP client for soak tests: commands and the events between them."""

from __future__ import annotations

from typing import Any

from cli_process import connect_when_listening
from qmp_lines import QmpLines


class SyncQmp(QmpLines):
    """Negotiated QMP over a unix socket; every read is bounded by ``timeout``."""

    def __init__(self, path: str, timeout: float = 60.0) -> None:
        super().__init__(path, timeout)
        self.events: list[dict[str, Any]] = []
        assert self.command("qmp_capabilities") == {}

    @classmethod
    def connect_when_listening(cls, path: str, deadline_s: float = 60.0) -> SyncQmp:
        """Connect once the server listens (a restarted server may still be starting)."""
        return connect_when_listening(lambda: cls(path), timeout=deadline_s)

    def command(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run a command; its ``return`` value (AssertionError on an error reply)."""
        self.request(name, arguments)
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
