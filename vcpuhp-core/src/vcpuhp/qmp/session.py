"""One client connection: greeting, capabilities negotiation, request → reply.

Requests on one connection run one at a time, in order, as in QEMU without
out-of-band execution; machine calls run in a worker thread so other
connections (and event delivery) carry on meanwhile. Every bad request gets
an error reply and the connection stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Final, Protocol, TypeVar

from vcpuhp.errors import DeviceNotFound, VcpuhpError
from vcpuhp.machine import VirtMachine
from vcpuhp.qmp import wire
from vcpuhp.qmp.commands import COMMANDS, SCHEMA, Command, QuitAfterReply, introspection
from vcpuhp.qmp.framing import MAX_MESSAGE_SIZE, FramingError, MessageSplitter, decode
from vcpuhp.qmp.wire import COMMAND_NOT_FOUND, DEVICE_NOT_FOUND, NO_ID, QmpError

_log = logging.getLogger(__name__)
_READ_CHUNK: Final = 16 * 1024
#: A client that lets this many bytes of replies and events pile up unread is dropped.
MAX_OUTPUT_BACKLOG: Final = 4 * 1024 * 1024
_T = TypeVar("_T")


class SessionHost(Protocol):
    """What a session needs from its server."""

    @property
    def machine(self) -> VirtMachine:
        """The machine commands act on."""
        ...

    async def run_in_worker(self, call: Callable[[], _T]) -> _T:
        """Run a blocking machine call off the event loop."""
        ...

    def broadcast(self, message: wire.Message) -> None:
        """Send an event to every negotiated client."""
        ...

    async def quit(self) -> None:
        """``quit``: shut the machine down and stop serving."""
        ...


class QmpSession:
    """The server side of one QMP connection."""

    def __init__(
        self,
        host: SessionHost,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_message_size: int = MAX_MESSAGE_SIZE,
    ) -> None:
        self._host = host
        self._reader = reader
        self._writer = writer
        self._splitter = MessageSplitter(max_message_size)
        self.negotiated = False
        self.peer: Any = writer.get_extra_info("peername")
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once the connection is closed (or closing)."""
        return self._closed or self._writer.is_closing()

    async def run(self) -> None:
        """Greet, then serve requests until the client hangs up or the server stops."""
        self.send(wire.greeting())
        try:
            while not self.closed:
                data = await self._reader.read(_READ_CHUNK)
                if not data:
                    break
                for frame in self._splitter.feed(data):
                    if not await self._serve(frame):
                        return
        except ConnectionError:
            pass
        finally:
            self.close()

    def send(self, message: wire.Message) -> None:
        """Queue ``message`` for the client; drop a client that stopped reading."""
        if self.closed:
            return
        self._writer.write(wire.encode(message))
        if self._writer.transport.get_write_buffer_size() > MAX_OUTPUT_BACKLOG:
            _log.warning("QMP client %s is not reading its replies and events; dropped",
                         self.peer)
            self._writer.transport.abort()
            self._closed = True

    def close(self) -> None:
        """Close the connection (queued output is still flushed)."""
        if not self._closed:
            self._closed = True
            self._writer.close()

    async def wait_closed(self, timeout: float) -> None:
        """Wait until the connection is closed and its output flushed, at most ``timeout``."""
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), timeout)

    # -- one request -----------------------------------------------------------------------

    async def _serve(self, frame: bytes | FramingError) -> bool:
        """Answer one request; False when the connection must end (after ``quit``)."""
        request_id: object = NO_ID
        command: Command | None = None
        try:
            request = self._parse(frame)
            request_id = request.get("id", NO_ID)
            command, arguments = self._command(request)
            result = await self._execute(command, arguments)
        except QmpError as error:
            self.send(wire.failure(error, request_id))
            await self._drain()
            return True
        quitting = command.name == "quit" or isinstance(result, QuitAfterReply)
        if isinstance(result, QuitAfterReply):
            result = result.result
        self.send(wire.success(result, request_id))
        await self._drain()
        for name in command.emits:
            self._host.broadcast(wire.event(name))
        if quitting:
            await self._host.quit()
            return False
        return True

    @staticmethod
    def _parse(frame: bytes | FramingError) -> dict[str, Any]:
        if isinstance(frame, FramingError):
            raise QmpError(frame.desc)
        request = decode(frame)
        if not isinstance(request, dict):
            raise QmpError("QMP input must be a JSON object")
        return request

    def _command(self, request: dict[str, Any]) -> tuple[Command, dict[str, Any]]:
        """Check the request's members (QEMU's order and messages) and find its command."""
        for member, value in request.items():
            if member == "execute":
                if not isinstance(value, str):
                    raise QmpError("QMP input member 'execute' must be a string")
            elif member == "arguments":
                if not isinstance(value, dict):
                    raise QmpError("QMP input member 'arguments' must be an object")
            elif member != "id":
                raise QmpError(f"QMP input member '{member}' is unexpected")
        if "execute" not in request:
            raise QmpError("QMP input lacks member 'execute'")
        name: str = request["execute"]
        arguments: dict[str, Any] = request.get("arguments", {})
        command = COMMANDS.get(name)
        if not self.negotiated and name != "qmp_capabilities":
            raise QmpError("Expecting capabilities negotiation with 'qmp_capabilities'",
                           COMMAND_NOT_FOUND)
        if command is None:
            raise QmpError(f"The command {name} has not been found", COMMAND_NOT_FOUND)
        SCHEMA.check_arguments(arguments, command)
        return command, arguments

    async def _execute(self, command: Command, arguments: dict[str, Any]) -> object:
        if command.handler is None:
            return self._session_command(command.name, arguments)
        handler = command.handler
        machine = self._host.machine
        try:
            return await self._host.run_in_worker(lambda: handler(machine, arguments))
        except QmpError:
            raise
        except DeviceNotFound as exc:
            raise QmpError(str(exc), DEVICE_NOT_FOUND) from None
        except VcpuhpError as exc:
            raise QmpError(str(exc)) from None
        except Exception as exc:
            _log.exception("QMP command %s failed unexpectedly", command.name)
            raise QmpError(f"internal error in {command.name}: {type(exc).__name__}: {exc}") \
                from None

    def _session_command(self, name: str, arguments: dict[str, Any]) -> object:
        if name == "qmp_capabilities":
            enable = arguments.get("enable", [])
            if self.negotiated:
                raise QmpError("Capabilities negotiation is already complete, command ignored",
                               COMMAND_NOT_FOUND)
            if enable:
                raise QmpError(f"Capability {', '.join(enable)} not available")
            self.negotiated = True
            return {}
        if name == "query-commands":
            return [{"name": command} for command in COMMANDS]
        if name == "query-qmp-schema":
            return wire.Verbatim(introspection())
        if name == "quit":
            return {}
        raise AssertionError(f"no session handler for {name}")

    async def _drain(self) -> None:
        if self.closed:
            return
        try:
            await self._writer.drain()
        except ConnectionError:
            self.close()
