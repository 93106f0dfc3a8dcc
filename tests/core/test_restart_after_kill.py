"""``kill -9`` leaves socket files behind; a restart on the same paths works (issue 8, item 3).

QEMU replaces a unix socket nobody listens on; vcpuhp does the same for both
its sockets, and still refuses one a live server owns.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_process import connect_when_listening
from vcpuhp import MachineConfig, VirtMachine
from vcpuhp.errors import ConfigError
from vcpuhp_null.protocol import ProtocolClient, ProtocolServer

Start = Callable[..., subprocess.Popen[str]]


def _run_args(qtest: Path, qmp: Path) -> list[str]:
    return ["run", "--accel", "null", "--smp", "cpus=2,maxcpus=4", "--monitor", "none",
            "--qtest", f"unix:{qtest}", "--qmp", f"unix:{qmp}"]


def test_kill_9_then_restart_on_the_same_sockets(tmp_path: Path, vcpuhp_process: Start) -> None:
    qtest, qmp = tmp_path / "qtest.sock", tmp_path / "qmp.sock"
    first = vcpuhp_process(qtest, *_run_args(qtest, qmp))
    assert ProtocolClient.connect(f"unix:{qtest}")("masks").startswith("OK possible 0-3")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert qtest.exists() and qmp.exists(), "kill -9 leaves both socket files"

    second = vcpuhp_process(qtest, *_run_args(qtest, qmp))  # the stale file is there at once
    client = connect_when_listening(lambda: ProtocolClient.connect(f"unix:{qtest}"), second)
    assert client("masks") == "OK possible 0-3 present 0-3 enabled 0-1 online 0"
    client.close()
    second.send_signal(signal.SIGTERM)
    _, err = second.communicate(timeout=30)
    assert second.returncode == 0, err
    assert "Traceback" not in err


def test_a_stale_test_protocol_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: what kill -9 leaves
    with VirtMachine(MachineConfig.build("cpus=1,maxcpus=2")) as machine:
        server = ProtocolServer(machine, f"unix:{path}")
        server.start()
        try:
            client = ProtocolClient.connect(f"unix:{path}")
            assert client("masks").startswith("OK possible 0-1")
            client.close()
        finally:
            server.close()


def test_a_live_test_protocol_socket_or_another_file_is_refused(tmp_path: Path) -> None:
    with VirtMachine(MachineConfig.build("cpus=1,maxcpus=2")) as machine:
        path = tmp_path / "live.sock"
        live = ProtocolServer(machine, f"unix:{path}")
        live.start()
        try:
            with pytest.raises(ConfigError, match="in use by another server"):
                ProtocolServer(machine, f"unix:{path}")
        finally:
            live.close()
        plain = tmp_path / "file"
        plain.write_text("keep me")
        with pytest.raises(ConfigError, match="exists and is not a socket"):
            ProtocolServer(machine, f"unix:{plain}")
        assert plain.read_text() == "keep me"
