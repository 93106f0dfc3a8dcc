"""Malformed input over a raw socket: QEMU's error, and the connection keeps working."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest

from vcpuhp import VirtMachine
from vcpuhp import events as ev
from vcpuhp.qmp import MAX_MESSAGE_SIZE, QmpServer
from vcpuhp.qmp import session as session_module

from .helpers import TIMEOUT, RawClient

RawFactory = Callable[..., RawClient]


def assert_usable(client: RawClient) -> None:
    assert client.command("query-status", id="check") == {
        "return": {"running": True, "status": "running"}, "id": "check"}


@pytest.mark.parametrize("data", [
    b'{"execute": }\n', b"hello\n", b'{"execute" "x"}\n',
    b'{"execute": "query-status", "id": NaN}\n', b'{"execute": "\xff"}\n',
    b'{"execute": "query-status", "execute": "quit"}\n',
    b"]\n", b'{"a": [1}\n', b'{"execute": "query-status\n',
])
def test_not_json_is_a_json_parse_error(raw_client: RawFactory, data: bytes) -> None:
    client = raw_client()
    error = client.error(data)
    assert error["class"] == "GenericError"
    assert error["desc"].startswith("JSON parse error, ")
    assert_usable(client)


@pytest.mark.parametrize("data", [b"[1, 2]\n", b"42\n", b'"query-status"\n', b"null\n",
                                  b"true\n"])
def test_json_that_is_not_an_object_is_refused(raw_client: RawFactory, data: bytes) -> None:
    client = raw_client()
    assert client.error(data) == {"class": "GenericError",
                                  "desc": "QMP input must be a JSON object"}
    assert_usable(client)


def test_missing_execute_is_refused_and_the_id_echoed(raw_client: RawFactory) -> None:
    client = raw_client()
    client.send(b'{"arguments": {}, "id": 17}\n')
    assert client.reply() == {"error": {"class": "GenericError",
                                        "desc": "QMP input lacks member 'execute'"}, "id": 17}
    assert_usable(client)


@pytest.mark.parametrize(("request_", "desc"), [
    ({"execute": 1}, "QMP input member 'execute' must be a string"),
    ({"execute": "query-status", "arguments": []}, "QMP input member 'arguments' must be an "
     "object"),
    ({"execute": "query-status", "exec-oob": "x"}, "QMP input member 'exec-oob' is unexpected"),
    ({"execute": "query-status", "argument": {}}, "QMP input member 'argument' is unexpected"),
])
def test_bad_request_members(raw_client: RawFactory, request_: dict[str, object],
                             desc: str) -> None:
    client = raw_client()
    assert client.error(json.dumps(request_).encode() + b"\n") == {"class": "GenericError",
                                                                  "desc": desc}
    assert_usable(client)


@pytest.mark.parametrize(("arguments", "desc"), [
    ({"driver": "max-arm-cpu", "id": "core4", "core-id": "4x"},
     "Parameter 'core-id' expects integer"),
    ({"driver": "max-arm-cpu", "id": "core4", "core-id": 4.5},
     "Parameter 'core-id' expects integer"),
    ({"driver": "max-arm-cpu", "id": "core4", "core-id": 2**64},
     "Parameter 'core-id' expects integer"),
    ({"driver": "max-arm-cpu", "id": "core4", "core-id": 2**40},
     "Parameter 'core-id' expects int32"),
    ({"driver": "max-arm-cpu", "id": "core4", "core-id": True},
     "Invalid parameter type for 'core-id', expected: integer"),
    ({"driver": "max-arm-cpu", "id": "core4", "core-id": 4, "socket-id": None},
     "Invalid parameter type for 'socket-id', expected: integer"),
    ({"driver": ["max-arm-cpu"], "id": "core4", "core-id": 4},
     "Invalid parameter type for 'driver', expected: string"),
    ({"driver": "max-arm-cpu", "id": {"name": "core4"}, "core-id": 4},
     "Invalid parameter type for 'id', expected: string"),
])
def test_wrong_argument_types(raw_client: RawFactory, machine: VirtMachine,
                              arguments: dict[str, object], desc: str) -> None:
    client = raw_client()
    before = machine.snapshot_bytes()
    reply = client.command("device_add", arguments)
    assert reply == {"error": {"class": "GenericError", "desc": desc}}
    assert machine.snapshot_bytes() == before
    assert_usable(client)


def test_qmp_capabilities_arguments_are_checked(raw_client: RawFactory) -> None:
    client = raw_client(negotiate=False)
    assert client.command("qmp_capabilities", {"enable": "oob"})["error"]["desc"] == \
        "Invalid parameter type for 'enable', expected: array"
    assert client.command("qmp_capabilities", {"enable": ["fast"]})["error"]["desc"] == \
        "Parameter 'enable[0]' does not accept value 'fast'"
    assert client.command("qmp_capabilities", {"enable": ["oob"]})["error"] == {
        "class": "GenericError", "desc": "Capability oob not available"}
    assert client.command("qmp_capabilities", {"enable": []}) == {"return": {}}
    assert_usable(client)


def test_over_long_message_is_refused_and_the_rest_of_its_line_skipped(
    raw_client: RawFactory,
) -> None:
    client = raw_client()
    huge = b'{"execute": "query-status", "arguments": {"x": "' + b"a" * MAX_MESSAGE_SIZE + b'"}}'
    client.send(huge + b' {"execute": "quit"}\n{"execute": "query-version", "id": 1}\n')
    error = client.reply()["error"]
    assert error["class"] == "GenericError" and str(MAX_MESSAGE_SIZE) in error["desc"]
    assert client.reply()["id"] == 1, "the next line is served; the rest of the long one is not"
    client.send(b"x" * (3 * MAX_MESSAGE_SIZE) + b"\n")
    assert str(MAX_MESSAGE_SIZE) in client.reply()["error"]["desc"]
    assert_usable(client)


def test_a_request_at_the_limit_is_accepted(raw_client: RawFactory) -> None:
    client = raw_client()
    head = b'{"execute": "query-status", "id": "'
    tail = b'"}'
    request = head + b"i" * (MAX_MESSAGE_SIZE - len(head) - len(tail)) + tail
    assert len(request) == MAX_MESSAGE_SIZE
    client.send(request + b"\n")
    assert client.reply()["return"]["running"] is True


def test_several_requests_per_line_and_requests_split_across_writes(
    raw_client: RawFactory,
) -> None:
    client = raw_client()
    client.send(b'{"execute": "query-st')
    time.sleep(0.01)
    client.send(b'atus", "id": 1}{"execute": "query-version", "id": 2} {"execute": "x-query-c')
    time.sleep(0.01)
    client.send(b'pu-masks",\n "id": 3}\n')
    assert [client.reply()["id"] for _ in range(3)] == [1, 2, 3]


@pytest.mark.parametrize("request_id", [0, "a", None, [1, {"b": 2}], {"tag": "x"}, 1.5])
def test_any_json_id_is_echoed(raw_client: RawFactory, request_id: object) -> None:
    client = raw_client()
    assert client.command("query-version", id=request_id)["id"] == request_id
    assert client.command("no-such", id=request_id)["id"] == request_id


def test_commands_before_negotiation_are_refused(raw_client: RawFactory) -> None:
    client = raw_client(negotiate=False)
    expecting = {"class": "CommandNotFound",
                 "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}
    assert client.command("query-status")["error"] == expecting
    assert client.command("no-such-command")["error"] == expecting
    assert client.command("device_add", {"driver": "max-arm-cpu", "id": "c", "core-id": 4}
                          )["error"] == expecting
    assert client.command("qmp_capabilities") == {"return": {}}
    assert_usable(client)


def test_clients_that_did_not_negotiate_get_no_events(raw_client: RawFactory) -> None:
    silent = raw_client(negotiate=False)
    talker = raw_client()
    assert talker.command("stop") == {"return": {}}
    assert talker.command("cont") == {"return": {}}
    assert silent.command("qmp_capabilities") == {"return": {}}, "no STOP/RESUME before it"


def test_a_client_that_disconnects_mid_command_harms_nobody(
    raw_client: RawFactory, server: QmpServer, machine: VirtMachine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entered, release = threading.Event(), threading.Event()
    real_query_status = machine.query_status

    def slow_query_status() -> dict[str, object]:
        entered.set()
        release.wait(TIMEOUT)
        return real_query_status()

    monkeypatch.setattr(machine, "query_status", slow_query_status)
    other = raw_client()
    leaver = raw_client()
    leaver.send(b'{"execute": "query-status"}\n')
    assert entered.wait(TIMEOUT)
    leaver.close()
    started = time.monotonic()
    assert "return" in other.command("query-hotpluggable-cpus")
    assert time.monotonic() - started < 1.0, "a blocked machine call must not stall the loop"
    release.set()

    half = raw_client()
    half.send(b'{"execute": "device_add", "arguments": {"driver": "max-arm-cpu", ')
    half.close()
    plugger = raw_client()
    plugger.send(b'{"execute": "device_add", "arguments": {"driver": "max-arm-cpu", '
                 b'"id": "core4", "core-id": 4}}\n')
    plugger.close()
    deadline = time.monotonic() + TIMEOUT
    while not machine.vcpus[4].enabled and time.monotonic() < deadline:
        time.sleep(0.01)
    assert machine.vcpus[4].device_id == "core4", "the command completes without its client"
    machine.check_invariants()
    assert_usable(other)
    while server.client_count > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.client_count == 1


def test_a_client_that_never_reads_is_dropped_not_buffered_forever(
    raw_client: RawFactory, server: QmpServer, machine: VirtMachine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(session_module, "MAX_OUTPUT_BACKLOG", 64 * 1024)
    raw_client()  # negotiates, then never reads a byte
    assert server.client_count == 1
    deadline = time.monotonic() + TIMEOUT
    while server.client_count and time.monotonic() < deadline:
        for _ in range(2000):
            machine.events.emit(ev.STOP)
        time.sleep(0.01)
    assert server.client_count == 0, "the deaf client was disconnected"
    assert machine.events.flush(timeout=60), "the flood was delivered"
    assert_usable(raw_client())


@pytest.mark.parametrize("byte", [b",", b"\x0b", b"\x0c"])
def test_one_stray_byte_does_not_hang_the_server(raw_client: RawFactory, byte: bytes) -> None:
    """Issue 8, item 1: the server thread spun on a top-level ',' and answered nobody."""
    client = raw_client()
    other = raw_client()
    client.send(b'{"execute": "query-status", "id": 1}' + byte + b"\n")
    assert client.reply()["id"] == 1
    assert client.reply()["error"]["desc"].startswith("JSON parse error")
    assert_usable(client)
    assert_usable(other)


def test_an_infinite_id_is_refused_and_the_reply_is_json(raw_client: RawFactory) -> None:
    """Issue 8, item 5: the reply echoed ``Infinity``; now it is a parse error."""
    client = raw_client()
    client.send(b'{"execute": "query-status", "id": 1e999}\n')
    client.sock.settimeout(TIMEOUT)
    line = b""
    while not line.endswith(b"\n"):
        line += client.sock.recv(1)
    assert b"Infinity" not in line
    reply = json.loads(line)
    assert reply == {"error": {"class": "GenericError",
                               "desc": "JSON parse error, number 1e999 is out of range"}}
    assert_usable(client)
