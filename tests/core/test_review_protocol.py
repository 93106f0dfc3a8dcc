"""The test protocol never lets a client block the machine, and survives command bugs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vcpuhp import VirtMachine
from vcpuhp_null.protocol import (
    MAX_BACKLOG,
    CommandInterpreter,
    ProtocolClient,
    ProtocolServer,
    connect,
)


@pytest.fixture
def served(
    null_machine: Callable[..., VirtMachine], tmp_path: Path
) -> Iterator[tuple[VirtMachine, str]]:
    machine = null_machine("cpus=2,maxcpus=4")
    address = f"unix:{tmp_path / 'qtest.sock'}"
    server = ProtocolServer(machine, address)
    server.start()
    yield machine, address
    server.close()


def test_a_client_that_stops_reading_never_blocks_the_emitter_and_is_dropped(
    served: tuple[VirtMachine, str], caplog: pytest.LogCaptureFixture,
) -> None:
    machine, address = served
    sock = connect(address)
    stream = sock.makefile("rw", encoding="ascii", newline="\n")
    stream.write("masks\n")
    stream.flush()
    assert stream.readline().startswith("OK possible"), "the connection is subscribed"
    count = 3 * MAX_BACKLOG
    padding = "x" * 1000

    def emit_many() -> None:
        for n in range(count):
            machine.events.emit("TEST_FLOOD", n=n, padding=padding)

    emitter = threading.Thread(target=emit_many, daemon=True)
    with caplog.at_level(logging.WARNING, logger="vcpuhp_null.protocol"):
        emitter.start()
        emitter.join(timeout=20)
        blocked = emitter.is_alive()
        machine.events.flush(timeout=60)  # every event reached the connection's outbox
        if blocked:
            sock.close()  # unblock the old synchronous writer before failing
            emitter.join(timeout=20)
        assert not blocked, "emitting an event waited for a client that does not read"
        received = sum(1 for line in stream if line.startswith("EVENT TEST_FLOOD"))
    assert received < count, "the lagging client was dropped, not served everything"
    assert f"is more than {MAX_BACKLOG} lines behind; dropping the connection" in caplog.text
    sock.close()

    again = connect(address).makefile("rw", encoding="ascii", newline="\n")
    again.write("masks\n")
    again.flush()
    assert again.readline().strip() == "OK possible 0-3 present 0-3 enabled 0-1 online 0"


def test_an_internal_error_is_an_err_reply_and_the_connection_stays(
    served: tuple[VirtMachine, str], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _machine, address = served

    def broken(self: CommandInterpreter, args: list[str]) -> str:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(CommandInterpreter, "_masks", broken)
    ask = ProtocolClient.connect(address)

    with caplog.at_level(logging.ERROR, logger="vcpuhp_null.protocol"):
        assert ask("masks") == "ERR internal error: RuntimeError: boom second line"
    assert "Traceback" in caplog.text and "command 'masks' failed" in caplog.text
    assert ask("psci 0 PSCI_VERSION") == "OK 65537"
    ask.close()
