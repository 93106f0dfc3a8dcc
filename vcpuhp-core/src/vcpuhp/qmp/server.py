"""The QMP server: an asyncio loop in a background thread serving many clients.

Machine events arrive on machine threads and are handed to the loop with
``call_soon_threadsafe``; the loop sends each to every negotiated client.
Machine calls run on a small worker pool so a slow call never stalls the
loop. See the package docstring for how the CLI uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TypeVar

from vcpuhp import events as ev
from vcpuhp.errors import ConfigError, StateError
from vcpuhp.events import MachineEvent
from vcpuhp.machine import VirtMachine
from vcpuhp.qmp import wire
from vcpuhp.qmp.address import QmpAddress, TcpAddress, UnixAddress, check_exposure, parse_address
from vcpuhp.qmp.events import to_qmp
from vcpuhp.qmp.framing import MAX_MESSAGE_SIZE
from vcpuhp.qmp.session import QmpSession
from vcpuhp.unixsocket import remove_stale_socket

_log = logging.getLogger(__name__)
_EVENT_FLUSH_TIMEOUT: Final = 2.0
"""How long a command's response waits for its events (a listener that blocks longer
delays those events, not the response)."""
_T = TypeVar("_T")
_WORKERS: Final = 8
_FLUSH_TIMEOUT: Final = 2.0
_SETTLE_ITERATIONS: Final = 4

#: Why :meth:`QmpServer.wait` returned.
QUIT: Final = "quit"
SHUTDOWN: Final = "shutdown"
CLOSED: Final = "closed"


class QmpServer:
    """Serves QMP for ``machine`` at ``address`` (``unix:PATH`` or ``tcp:HOST:PORT``).

    :param allow_remote: allow a TCP host other clients can reach; without
        it only loopback hosts are accepted (:class:`ConfigError` otherwise).
    :param max_message_size: longest request accepted, in bytes.
    """

    def __init__(
        self,
        machine: VirtMachine,
        address: str | QmpAddress,
        *,
        allow_remote: bool = False,
        max_message_size: int = MAX_MESSAGE_SIZE,
    ) -> None:
        self._machine = machine
        self.address = parse_address(address) if isinstance(address, str) else address
        check_exposure(self.address, allow_remote=allow_remote)
        self.max_message_size = max_message_size
        self._bound: QmpAddress | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._executor = ThreadPoolExecutor(_WORKERS, thread_name_prefix="vcpuhp-qmp-worker")
        self._server: asyncio.base_events.Server | None = None
        self._sessions: dict[QmpSession, asyncio.Task[None]] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._started = threading.Event()
        self._startup_error: BaseException | None = None
        self._finished = threading.Event()
        self._reason: str | None = None
        self._stopping = False
        self._stop_task: asyncio.Task[None] | None = None
        self._socket_inode: tuple[int, int] | None = None
        self._lock = threading.Lock()

    # -- the public life cycle (any thread) ----------------------------------------------

    @property
    def machine(self) -> VirtMachine:
        """The machine the commands act on."""
        return self._machine

    @property
    def bound_address(self) -> QmpAddress:
        """Where the server listens (with the real port when ``tcp:HOST:0`` was asked)."""
        if self._bound is None:
            raise StateError("the QMP server is not listening; call start() first")
        return self._bound

    @property
    def client_count(self) -> int:
        """Connected clients, negotiated or not."""
        return len(self._sessions)

    def start(self, timeout: float = 10.0) -> None:
        """Start serving in a background thread; returns once the socket listens.

        Raises :class:`ConfigError` when the address can't be listened on.
        """
        with self._lock:
            if self._thread is not None or self._finished.is_set():
                raise StateError("a QMP server starts once; make a new one to serve again")
            self._thread = threading.Thread(target=self._thread_main, name="vcpuhp-qmp",
                                            daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise StateError(f"the QMP server did not start listening within {timeout}s")
        if self._startup_error is not None:
            self._thread.join(timeout)
            self._release()
            raise self._startup_error

    def wait(self, timeout: float | None = None) -> str | None:
        """Block until a client sent ``quit``, the guest shut down, or :meth:`close`.

        Returns :data:`QUIT`, :data:`SHUTDOWN` or :data:`CLOSED`; ``None`` on timeout.
        """
        self._finished.wait(timeout)
        return self._reason

    def serve_forever(self) -> str:
        """:meth:`wait` without a timeout: what ``vcpuhp run --qmp`` blocks on."""
        reason = self.wait()
        assert reason is not None
        return reason

    def close(self, timeout: float = 10.0) -> None:
        """Stop serving: close every connection (flushing queued output) and the socket.

        Idempotent; does not shut the machine down (``quit`` does).
        """
        loop, thread = self._loop, self._thread
        if thread is not None and thread.is_alive() and loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already finishing
                loop.call_soon_threadsafe(self._begin_stop)
            thread.join(timeout)
            if thread.is_alive():
                _log.warning("QMP server thread did not stop within %ss", timeout)
        self._release()
        self._finish(CLOSED)

    def __enter__(self) -> QmpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop thread -------------------------------------------------------------------

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:
            self._startup_error = exc
            self._started.set()
            loop.close()
            return
        self._unsubscribe = self._machine.events.subscribe(self._on_machine_event)
        self._started.set()
        try:
            loop.run_forever()
        finally:
            self._release()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            # Transports closed just now (a connection accepted while stopping) release
            # their sockets in callbacks: let those run before the loop goes away.
            for _ in range(_SETTLE_ITERATIONS):
                loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    async def _listen(self) -> None:
        address = self.address
        try:
            if isinstance(address, UnixAddress):
                sock = self._unix_socket(address)
                self._server = await asyncio.start_unix_server(self._on_client, sock=sock)
                self._bound = address
            else:
                self._server = await asyncio.start_server(
                    self._on_client, address.host or None, address.port
                )
                name = self._server.sockets[0].getsockname()
                self._bound = TcpAddress(str(name[0]), int(name[1]))
        except OSError as exc:
            raise ConfigError(f"cannot listen for QMP on {address}: {exc.strerror or exc}") \
                from exc
        _log.info("QMP server listening on %s", self._bound)

    def _unix_socket(self, address: UnixAddress) -> socket.socket:
        """Bind a unix socket and make it 0600 before it listens, so nobody else can connect."""
        path = os.fspath(address.path)
        remove_stale_socket(path, "QMP socket")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o600)
            info = os.stat(path)
            self._socket_inode = (info.st_dev, info.st_ino)
        except BaseException:
            sock.close()
            raise
        return sock

    def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A connection was accepted: register its session at once, then serve it.

        Plain function, not a coroutine, so a session is known (and closed by
        :meth:`_stop`) even if its task never got to run.
        """
        if self._stopping:
            writer.close()
            return
        session = QmpSession(self, reader, writer, max_message_size=self.max_message_size)
        self._sessions[session] = asyncio.get_running_loop().create_task(self._serve(session))
        _log.debug("QMP client connected: %s", session.peer)

    async def _serve(self, session: QmpSession) -> None:
        try:
            await session.run()
        finally:
            self._sessions.pop(session, None)
            _log.debug("QMP client gone: %s", session.peer)

    # -- SessionHost --------------------------------------------------------------------

    async def run_in_worker(self, call: Callable[[], _T]) -> _T:
        """Run a blocking machine call on the worker pool.

        Events the machine emitted until the call returned reach the clients
        before its response, as in QEMU (the worker waits, bounded, until the
        event thread has handed them to the loop).
        """
        machine = self._machine

        def call_then_flush() -> _T:
            try:
                return call()
            finally:
                machine.events.flush(timeout=_EVENT_FLUSH_TIMEOUT)

        return await asyncio.get_running_loop().run_in_executor(self._executor, call_then_flush)

    def broadcast(self, message: wire.Message) -> None:
        """Send an event to every negotiated client (loop thread only)."""
        for session in list(self._sessions):
            if session.negotiated:
                session.send(message)

    async def quit(self) -> None:
        """``quit``: SHUTDOWN to every client, machine shut down, then stop serving."""
        self.broadcast(wire.event(ev.SHUTDOWN, {"guest": False, "reason": "host-qmp-quit"}))
        try:
            await self.run_in_worker(self._machine.shutdown)
        except Exception:
            _log.exception("machine shutdown after QMP quit failed")
        self._finish(QUIT)
        self._begin_stop()

    # -- events and stopping --------------------------------------------------------------

    def _on_machine_event(self, event: MachineEvent) -> None:
        """EventBus listener, on a machine thread: hand the event to the loop."""
        message = to_qmp(event)
        loop = self._loop
        if message is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing or closed
            loop.call_soon_threadsafe(self._deliver, event.name, message)

    def _deliver(self, name: str, message: wire.Message) -> None:
        self.broadcast(message)
        if name == ev.SHUTDOWN:
            self._finish(SHUTDOWN)

    def _finish(self, reason: str) -> None:
        with self._lock:
            if self._reason is None:
                self._reason = reason
        self._finished.set()

    def _begin_stop(self) -> None:
        """Start :meth:`_stop` (loop thread), once."""
        if not self._stopping:
            self._stopping = True
            loop = asyncio.get_running_loop()
            if self._server is not None:
                for sock in self._server.sockets:  # accept nothing more from now on
                    loop.remove_reader(sock.fileno())
            self._stop_task = loop.create_task(self._stop())

    async def _stop(self) -> None:
        """Close the listener and every connection, then stop the loop."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        for _ in range(_SETTLE_ITERATIONS):
            # Connections accepted just before accepting stopped are still being set up
            # by asyncio; let them reach _on_client (which closes them) before closing
            # the server: on Python 3.11 a transport set up after Server.close() fails
            # half-way and leaks its socket.
            await asyncio.sleep(0)
        if self._server is not None:
            self._server.close()
        sessions = list(self._sessions.items())
        for session, _ in sessions:
            session.close()
        await asyncio.gather(*(s.wait_closed(_FLUSH_TIMEOUT) for s, _ in sessions))
        for _, task in sessions:
            task.cancel()
        await asyncio.gather(*(task for _, task in sessions), return_exceptions=True)
        self._remove_socket()
        asyncio.get_running_loop().stop()

    def _release(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._remove_socket()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _remove_socket(self) -> None:
        """Unlink the unix socket, if it is still the one this server created."""
        if not isinstance(self.address, UnixAddress) or self._socket_inode is None:
            return
        path = os.fspath(self.address.path)
        with contextlib.suppress(OSError):
            info = os.stat(path)
            if (info.st_dev, info.st_ino) == self._socket_inode:
                os.unlink(path)
        self._socket_inode = None
