"""Clients for the QMP server tests: the real ``qemu.qmp`` one and a raw socket one.

Every wait is bounded by :data:`TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Coroutine
from typing import Any, TypeVar

from qemu.qmp import ExecuteError, QMPClient

TIMEOUT = 5.0
_T = TypeVar("_T")


def run(coro: Coroutine[Any, Any, _T], timeout: float = 30.0) -> _T:
    """Run an async test body with an overall bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def bounded(awaitable: Coroutine[Any, Any, _T]) -> _T:
    """Await with the per-step timeout."""
    return await asyncio.wait_for(awaitable, TIMEOUT)


async def connect(address: str | tuple[str, int], name: str = "test") -> QMPClient:
    """A negotiated ``qemu.qmp`` client."""
    client = QMPClient(name)
    await bounded(client.connect(address))
    return client


async def execute(client: QMPClient, command: str, arguments: dict[str, Any] | None = None
                  ) -> Any:
    """``client.execute`` with a timeout."""
    return await bounded(client.execute(command, arguments))


async def error_of(client: QMPClient, command: str,
                   arguments: dict[str, Any] | None = None) -> ExecuteError:
    """The :class:`ExecuteError` a command must fail with."""
    try:
        result = await execute(client, command, arguments)
    except ExecuteError as error:
        return error
    raise AssertionError(f"{command} {arguments} succeeded with {result!r}")


async def next_event(client: QMPClient, name: str) -> dict[str, Any]:
    """The next event called ``name`` from the client's default event queue."""
    while True:
        event = await bounded(client.events.get())
        if event["event"] == name:
            return dict(event)


class RawClient:
    """A blocking socket client that sends arbitrary bytes and reads QMP lines."""

    def __init__(self, path: str, *, negotiate: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(path)
        self._buffer = b""
        self.greeting = self.read()
        if negotiate:
            assert self.command("qmp_capabilities") == {"return": {}}

    def send(self, data: bytes) -> None:
        """Send raw bytes."""
        self.sock.sendall(data)

    def read(self) -> dict[str, Any]:
        """The next message (reply or event)."""
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def reply(self) -> dict[str, Any]:
        """The next reply, skipping events."""
        while True:
            message = self.read()
            if "event" not in message:
                return message

    def command(self, name: str, arguments: dict[str, Any] | None = None,
                **members: Any) -> dict[str, Any]:
        """Send ``{"execute": name, ...}`` and return its reply."""
        request: dict[str, Any] = {"execute": name, **members}
        if arguments is not None:
            request["arguments"] = arguments
        self.send(json.dumps(request).encode() + b"\n")
        return self.reply()

    def error(self, data: bytes) -> dict[str, Any]:
        """Send ``data`` and return the error member of the reply it must get."""
        self.send(data)
        reply = self.reply()
        assert "error" in reply, reply
        error: dict[str, Any] = reply["error"]
        return error

    def close(self) -> None:
        """Hang up."""
        self.sock.close()
