"""Clients for the QMP server tests: the real ``qemu.qmp`` one and a raw socket one.

Every wait is bounded by :data:`TIMEOUT`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from qemu.qmp import ExecuteError, QMPClient

from qmp_lines import QmpLines

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


class RawClient(QmpLines):
    """A blocking socket client that sends arbitrary bytes and reads QMP lines."""

    def __init__(self, path: str, *, negotiate: bool = False) -> None:
        super().__init__(path, TIMEOUT)
        if negotiate:
            assert self.command("qmp_capabilities") == {"return": {}}

    def reply(self) -> dict[str, Any]:
        """The next reply, skipping events."""
        while True:
            message = self.read()
            if "event" not in message:
                return message

    def command(self, name: str, arguments: dict[str, Any] | None = None,
                **members: Any) -> dict[str, Any]:
        """Send ``{"execute": name, ...}`` and return its reply."""
        self.request(name, arguments, **members)
        return self.reply()

    def error(self, data: bytes) -> dict[str, Any]:
        """Send ``data`` and return the error member of the reply it must get."""
        self.send(data)
        reply = self.reply()
        assert "error" in reply, reply
        error: dict[str, Any] = reply["error"]
        return error
