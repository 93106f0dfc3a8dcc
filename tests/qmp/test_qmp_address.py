"""Addresses, exposure and the unix socket's permissions."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from vcpuhp import ConfigError, StateError, VirtMachine
from vcpuhp.qmp import QmpServer, TcpAddress, UnixAddress, parse_address

from .helpers import connect, execute, run


@pytest.mark.parametrize(("text", "expected"), [
    ("unix:/run/vcpuhp/qmp.sock", UnixAddress(Path("/run/vcpuhp/qmp.sock"))),
    ("unix:rel.sock", UnixAddress(Path("rel.sock"))),
    ("tcp:127.0.0.1:4444", TcpAddress("127.0.0.1", 4444)),
    ("tcp:localhost:0", TcpAddress("localhost", 0)),
    ("tcp:[::1]:4444", TcpAddress("::1", 4444)),
    ("tcp::4444", TcpAddress("", 4444)),
])
def test_parse_address(text: str, expected: object) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("qmp.sock", "use unix:PATH or tcp:HOST:PORT"),
    ("unix:", "use unix:PATH or tcp:HOST:PORT"),
    ("udp:1.2.3.4:5", "kind 'udp' is not supported"),
    ("tcp:127.0.0.1", "lacks a port"),
    ("tcp:127.0.0.1:http", "valid ports are 0-65535"),
    ("tcp:127.0.0.1:70000", "valid ports are 0-65535"),
    ("tcp:::1:4444", "brackets"),
])
def test_bad_addresses_say_what_is_valid(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_address(text)


@pytest.mark.parametrize("address", ["tcp:0.0.0.0:4444", "tcp::4444", "tcp:[::]:4444",
                                     "tcp:192.0.2.1:4444", "tcp:example.com:4444"])
def test_non_loopback_tcp_is_refused_without_the_flag(machine: VirtMachine,
                                                      address: str) -> None:
    with pytest.raises(ConfigError, match="allow remote clients explicitly"):
        QmpServer(machine, address)
    QmpServer(machine, address, allow_remote=True)  # accepted (not started: nothing listens)


@pytest.mark.parametrize("address", ["tcp:127.0.0.1:0", "tcp:localhost:0", "tcp:127.1.2.3:0"])
def test_loopback_tcp_serves(machine: VirtMachine, address: str) -> None:
    with QmpServer(machine, address) as server:
        bound = server.bound_address
        assert isinstance(bound, TcpAddress) and bound.port > 0 and bound.is_loopback

        async def body() -> None:
            client = await connect((bound.host, bound.port))
            assert (await execute(client, "query-status"))["running"] is True
            await client.disconnect()

        run(body())


def test_tcp_port_in_use_is_a_config_error(machine: VirtMachine) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen for QMP on tcp:127.0.0.1:{port}"):
            QmpServer(machine, f"tcp:127.0.0.1:{port}").start()


def test_unix_socket_is_0600_whatever_the_umask(machine: VirtMachine, socket_dir: Path) -> None:
    path = socket_dir / "qmp.sock"
    old = os.umask(0)
    try:
        server = QmpServer(machine, f"unix:{path}")
        server.start()
    finally:
        os.umask(old)
    try:
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    finally:
        server.close()
    assert not path.exists()


def test_stale_socket_is_replaced_live_one_and_files_refused(
    machine: VirtMachine, socket_dir: Path
) -> None:
    path = socket_dir / "qmp.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    with QmpServer(machine, f"unix:{path}"):
        with pytest.raises(ConfigError, match="in use by another server"):
            QmpServer(machine, f"unix:{path}").start()
        assert path.exists(), "the refused server leaves the live socket alone"
    regular = socket_dir / "file"
    regular.write_text("keep me")
    with pytest.raises(ConfigError, match="is not a socket"):
        QmpServer(machine, f"unix:{regular}").start()
    assert regular.read_text() == "keep me"


def test_unlistenable_path_is_a_config_error(machine: VirtMachine, socket_dir: Path) -> None:
    with pytest.raises(ConfigError, match="cannot listen for QMP"):
        QmpServer(machine, f"unix:{socket_dir / 'missing-dir' / 'qmp.sock'}").start()


def test_close_is_idempotent_and_wait_reports_closed(machine: VirtMachine,
                                                     socket_dir: Path) -> None:
    server = QmpServer(machine, f"unix:{socket_dir / 'qmp.sock'}")
    server.start()
    assert server.wait(0) is None
    server.close()
    server.close()
    assert server.wait(0) == "closed"
    assert machine.run_state.value == "running", "close() leaves the machine alone"


def test_a_server_starts_once(machine: VirtMachine, socket_dir: Path) -> None:
    server = QmpServer(machine, f"unix:{socket_dir / 'qmp.sock'}")
    server.close()
    with pytest.raises(StateError, match="starts once"):
        server.start()
