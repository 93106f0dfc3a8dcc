"""The null backend's qtest-style line protocol: a test driver plays the guest over a socket.

One command per line, one reply line per command (``OK ...`` or ``ERR <why>``);
lines the machine sends on its own start with ``IRQ`` or ``EVENT`` and may
arrive between a command and its reply. Numbers are decimal or ``0x`` hex.

Guest side (what a vCPU would do)::

    readb|readw|readl|readq ADDR              -> OK 0x<value>
    writeb|writew|writel|writeq ADDR VALUE    -> OK
    psci CPU FUNCTION [ARG ...]               -> OK <signed result>   (the call made by CPU)
    mrs CPU ICC_REG                           -> OK 0x<value>         (GIC CPU interface)
    msr CPU ICC_REG VALUE                     -> OK
    start CPU                                 -> OK   (deferred start, defer-start=on)

Host side (what a management tool would do; QMP is the full interface)::

    device_add DRIVER,id=ID[,socket-id=N][,cluster-id=N][,core-id=N][,thread-id=N] -> OK
    device_del ID                             -> OK
    masks                                     -> OK possible 0-5 present 0-5 enabled 0-3 online 0-1

Asynchronous lines::

    IRQ raise CPU                 CPU has an interrupt it would take now
    EVENT NAME {json data}        a machine event (DEVICE_DELETED, ACPI_DEVICE_OST, ...)

Every outgoing line goes through the connection's queue and its own writer
thread, so the thread that emits an event (often a vCPU holding the machine
lock) never waits for a client. A client that falls more than
:data:`MAX_BACKLOG` lines behind is disconnected.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import socket
import socketserver
import threading
from collections.abc import Callable
from typing import Any, Final

from vcpuhp import events as ev
from vcpuhp.errors import VcpuhpError
from vcpuhp.gic import ICC_REGISTER_NAMES
from vcpuhp.machine import VirtMachine
from vcpuhp.psci import PsciFunction
from vcpuhp.unixsocket import remove_stale_socket
from vcpuhp_null.driver import GuestDriver

_log = logging.getLogger(__name__)

MAX_LINE: Final = 4096
#: Lines a client may fall behind (unread replies and events) before it is dropped.
MAX_BACKLOG: Final = 10_000
#: Seconds a closing connection's writer gets to flush what is still queued.
_FLUSH_TIMEOUT: Final = 5.0
_SIZES: Final = {"b": 1, "w": 2, "l": 4, "q": 8}
_QUIET_EVENTS: Final = frozenset({ev.INTERRUPT, ev.CONSOLE})


class ProtocolError(VcpuhpError):
    """A line that is not a valid command."""


def _number(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ProtocolError(f"{what} {text!r} is not a number (decimal or 0x hex)") from None


def _psci_function(text: str) -> int:
    name = text.upper()
    if name in PsciFunction.__members__:
        return int(PsciFunction[name])
    return _number(text, "PSCI function")


class CommandInterpreter:
    """Executes protocol lines against a machine; no I/O of its own."""

    def __init__(self, machine: VirtMachine) -> None:
        self.machine = machine
        self.driver = GuestDriver(machine)
        self._commands: dict[str, Callable[[list[str]], str]] = {
            "psci": self._psci, "mrs": self._mrs, "msr": self._msr, "start": self._start,
            "device_add": self._device_add, "device_del": self._device_del,
            "masks": self._masks,
        }
        for suffix, size in _SIZES.items():
            self._commands[f"read{suffix}"] = self._reader(size)
            self._commands[f"write{suffix}"] = self._writer(size)

    def execute(self, line: str) -> str:
        """The reply line (without newline) to one command line.

        Never raises: a rejected command is ``ERR <why>``, and a bug in a
        command (any other exception) is ``ERR internal error: <type>: <msg>``,
        logged with its traceback.
        """
        words = line.split()
        if not words:
            return "ERR empty command"
        handler = self._commands.get(words[0])
        if handler is None:
            return f"ERR unknown command {words[0]!r}; valid: {', '.join(sorted(self._commands))}"
        try:
            return handler(words[1:])
        except VcpuhpError as exc:
            return f"ERR {exc}".replace("\n", " ")
        except Exception as exc:
            _log.exception("test protocol: command %r failed", line)
            return f"ERR internal error: {type(exc).__name__}: {exc}".replace("\n", " ")

    @staticmethod
    def _arity(args: list[str], low: int, high: int, usage: str) -> None:
        if not low <= len(args) <= high:
            raise ProtocolError(f"usage: {usage}")

    def _reader(self, size: int) -> Callable[[list[str]], str]:
        def read(args: list[str]) -> str:
            self._arity(args, 1, 1, f"read{'bwlq'[size.bit_length() - 1]} ADDR")
            return f"OK {self.driver.read(_number(args[0], 'address'), size):#x}"
        return read

    def _writer(self, size: int) -> Callable[[list[str]], str]:
        def write(args: list[str]) -> str:
            self._arity(args, 2, 2, f"write{'bwlq'[size.bit_length() - 1]} ADDR VALUE")
            self.driver.write(_number(args[0], "address"), size, _number(args[1], "value"))
            return "OK"
        return write

    def _cpu(self, text: str) -> int:
        cpu = _number(text, "CPU")
        if not 0 <= cpu < len(self.machine.vcpus):
            raise ProtocolError(f"CPU {cpu} is out of range 0-{len(self.machine.vcpus) - 1}")
        return cpu

    def _psci(self, args: list[str]) -> str:
        self._arity(args, 2, 5, "psci CPU FUNCTION [ARG ...] (at most 3 arguments)")
        result = self.driver.psci(
            self._cpu(args[0]), _psci_function(args[1]),
            *(_number(a, "argument") for a in args[2:]),
        )
        return f"OK {int(result)}"

    def _register(self, text: str) -> str:
        if text not in ICC_REGISTER_NAMES:
            raise ProtocolError(f"{text!r} is not a GIC CPU interface register; valid: "
                                + ", ".join(sorted(ICC_REGISTER_NAMES)))
        return text

    def _mrs(self, args: list[str]) -> str:
        self._arity(args, 2, 2, "mrs CPU ICC_REG")
        return f"OK {self.machine.sysreg_read(self._cpu(args[0]), self._register(args[1])):#x}"

    def _msr(self, args: list[str]) -> str:
        self._arity(args, 3, 3, "msr CPU ICC_REG VALUE")
        self.machine.sysreg_write(self._cpu(args[0]), self._register(args[1]),
                                  _number(args[2], "value"))
        return "OK"

    def _start(self, args: list[str]) -> str:
        self._arity(args, 1, 1, "start CPU")
        try:
            self.driver.start(self._cpu(args[0]))
        except TypeError as exc:
            raise ProtocolError(str(exc)) from None
        return "OK"

    def _device_add(self, args: list[str]) -> str:
        self._arity(args, 1, 1, "device_add DRIVER,id=ID,core-id=N,...")
        driver, *pairs = args[0].split(",")
        props: dict[str, Any] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise ProtocolError(f"device_add: {pair!r} is not key=value")
            props[key] = value if key == "id" else _number(value, key)
        device_id = props.pop("id", None)
        self.machine.device_add(driver, device_id, **props)
        return "OK"

    def _device_del(self, args: list[str]) -> str:
        self._arity(args, 1, 1, "device_del ID")
        self.machine.device_del(args[0])
        return "OK"

    def _masks(self, args: list[str]) -> str:
        self._arity(args, 0, 0, "masks")
        return f"OK {self.machine.cpu_masks()}"


class _Outbox:
    """A connection's outgoing lines: queued by any thread, written by one writer thread.

    :meth:`send` never blocks. When more than :data:`MAX_BACKLOG` lines are
    waiting, the client is not reading: the connection is shut down (which
    also ends the reader) and later lines are discarded.
    """

    def __init__(self, sock: socket.socket, wfile: Any, peer: str) -> None:
        self._sock = sock
        self._wfile = wfile
        self._peer = peer
        self._lines: queue.Queue[str | None] = queue.Queue(MAX_BACKLOG)
        self._dropped = threading.Event()
        self._drop_lock = threading.Lock()
        self._thread = threading.Thread(target=self._write_loop, daemon=True,
                                        name=f"vcpuhp-qtest-writer {peer}")
        self._thread.start()

    @property
    def dropped(self) -> bool:
        """Whether the connection was shut down for falling behind or a write error."""
        return self._dropped.is_set()

    def send(self, line: str) -> None:
        """Queue ``line`` (without newline) for the client."""
        if self._dropped.is_set():
            return
        try:
            self._lines.put_nowait(line)
        except queue.Full:
            if self._drop():
                _log.warning("test protocol client %s is more than %d lines behind; "
                             "dropping the connection", self._peer, MAX_BACKLOG)

    def close(self) -> None:
        """Let the writer flush what is queued (for a while), then stop it."""
        try:
            self._lines.put_nowait(None)
        except queue.Full:
            self._drop()
        self._thread.join(_FLUSH_TIMEOUT)
        if self._thread.is_alive():
            self._drop()
            self._thread.join(_FLUSH_TIMEOUT)

    def _drop(self) -> bool:
        """Shut the connection down; False when it already was."""
        with self._drop_lock:
            if self._dropped.is_set():
                return False
            self._dropped.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        while True:  # wake the writer if it waits on an empty queue
            try:
                self._lines.put_nowait(None)
                return True
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._lines.get_nowait()

    def _write_loop(self) -> None:
        while not self._dropped.is_set():
            batch: list[str] = []
            line = self._lines.get()
            while line is not None:
                batch.append(line)
                try:
                    line = self._lines.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self._wfile.write("".join(f"{b}\n" for b in batch).encode())
                    self._wfile.flush()
                except OSError:
                    self._dropped.set()
                    return
            if line is None:
                return


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        interpreter = CommandInterpreter(self.server.machine)
        outbox = _Outbox(self.connection, self.wfile, str(self.client_address or "unix"))
        send = outbox.send

        def on_event(event: ev.MachineEvent) -> None:
            if event.name == ev.INTERRUPT:
                send(f"IRQ raise {event.data['cpu_index']}")
            elif event.name not in _QUIET_EVENTS:
                send(f"EVENT {event.name} {json.dumps(event.data, sort_keys=True)}")

        unsubscribe = self.server.machine.events.subscribe(on_event)
        try:
            while not outbox.dropped:
                raw = self.rfile.readline(MAX_LINE + 1)
                if not raw:
                    return
                if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                    send(f"ERR line longer than {MAX_LINE} bytes")
                    while raw and not raw.endswith(b"\n"):
                        raw = self.rfile.readline(MAX_LINE + 1)
                    continue
                try:
                    line = raw.decode("ascii").strip()
                except UnicodeDecodeError:
                    send("ERR commands are ASCII text")
                    continue
                reply = interpreter.execute(line)
                # As QEMU's qtest: what the command raised (IRQ, events) comes before its reply.
                self.server.machine.events.flush()
                send(reply)
        except OSError:
            return  # the connection was shut down under the reader
        finally:
            unsubscribe()
            outbox.close()


class _Server(socketserver.ThreadingMixIn, socketserver.BaseServer):
    daemon_threads = True
    machine: VirtMachine


class _UnixServer(_Server, socketserver.UnixStreamServer):
    pass


class _TcpServer(_Server, socketserver.TCPServer):
    allow_reuse_address = True


class ProtocolServer:
    """Serves the line protocol on ``unix:PATH`` or ``tcp:127.0.0.1:PORT`` (loopback only)."""

    def __init__(self, machine: VirtMachine, address: str) -> None:
        kind, _, rest = address.partition(":")
        self.path: str | None = None
        server: _Server
        if kind == "unix" and rest:
            # A socket left by a killed vcpuhp is replaced (as QMP's); a live one is refused.
            remove_stale_socket(rest, "test protocol socket")
            old = os.umask(0o177)
            try:
                server = _UnixServer(rest, _Handler)
            finally:
                os.umask(old)
            self.path = rest
        elif kind == "tcp":
            host, _, port = rest.rpartition(":")
            if host not in ("127.0.0.1", "localhost", "::1"):
                raise ProtocolError(f"test protocol listens on loopback only, not {host!r}")
            server = _TcpServer((host, _number(port, "port")), _Handler)
        else:
            raise ProtocolError(f"address {address!r}: use unix:PATH or tcp:127.0.0.1:PORT")
        server.machine = machine
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                                        name="vcpuhp-qtest", daemon=True)

    @property
    def address(self) -> Any:
        """The bound address (a path, or ``(host, port)``)."""
        return self._server.server_address

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving and remove the socket file."""
        self._server.shutdown()
        self._server.server_close()
        if self.path and os.path.exists(self.path):
            os.unlink(self.path)


def connect(address: str, timeout: float = 10.0) -> socket.socket:
    """A client socket to a :class:`ProtocolServer` (for tests and tools)."""
    kind, _, rest = address.partition(":")
    if kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(rest)
        return sock
    host, _, port = rest.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


class ProtocolClient:
    """A blocking client of the line protocol: one command in, its reply out.

    Asynchronous ``IRQ`` / ``EVENT`` lines that arrive before a reply are kept
    in :attr:`async_lines` rather than mistaken for the reply.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._stream = sock.makefile("rw", encoding="ascii", newline="\n")
        self.async_lines: list[str] = []

    @classmethod
    def connect(cls, address: str, timeout: float = 10.0) -> ProtocolClient:
        """Connect to ``unix:PATH`` or ``tcp:HOST:PORT``."""
        return cls(connect(address, timeout))

    def ask(self, line: str) -> str:
        """Send one command; the reply line without its newline."""
        self._stream.write(line + "\n")
        self._stream.flush()
        while True:
            reply = self._stream.readline()
            if not reply:
                raise ConnectionError(f"connection closed before the reply to {line!r}")
            reply = reply.rstrip("\n")
            if reply.startswith(("IRQ ", "EVENT ")):
                self.async_lines.append(reply)
                continue
            return reply

    __call__ = ask

    def events(self, name: str) -> list[dict[str, Any]]:
        """The data of every ``EVENT name`` line seen so far."""
        prefix = f"EVENT {name} "
        return [json.loads(x[len(prefix):]) for x in self.async_lines if x.startswith(prefix)]

    def close(self) -> None:
        """Close the connection."""
        self._stream.close()
        self.sock.close()
