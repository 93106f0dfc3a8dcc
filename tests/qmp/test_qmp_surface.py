"""The QMP surface a management tool probes (issue 8, item 12).

One description of the commands (vcpuhp.qmp.commands) gives argument
checking, ``query-commands`` and ``query-qmp-schema``; the tests check
that the three agree, and that each new command does something real.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vcpuhp import VirtMachine
from vcpuhp_null import GuestDriver

from .helpers import RawClient

RawFactory = Callable[..., RawClient]
ADD_CORE4 = {"driver": "max-arm-cpu", "id": "core4", "core-id": 4}


def _ok(client: RawClient, name: str, arguments: dict[str, Any] | None = None) -> Any:
    reply = client.command(name, arguments)
    assert "return" in reply, reply
    return reply["return"]


def _error(client: RawClient, name: str, arguments: dict[str, Any] | None = None
           ) -> dict[str, str]:
    reply = client.command(name, arguments)
    assert "error" in reply, reply
    error: dict[str, str] = reply["error"]
    return error


@pytest.fixture
def client(raw_client: RawFactory) -> RawClient:
    return raw_client()


# -- query-qmp-schema: one description ---------------------------------------------------


def test_the_schema_lists_every_command_and_every_type_it_names(client: RawClient) -> None:
    schema = _ok(client, "query-qmp-schema")
    by_name = {entity["name"]: entity for entity in schema}
    assert len(by_name) == len(schema), "names are unique"
    commands = [e["name"] for e in schema if e["meta-type"] == "command"]
    assert commands == [c["name"] for c in _ok(client, "query-commands")]

    def check(type_name: str) -> None:
        assert type_name in by_name, f"type {type_name} is not in the schema"

    for entity in schema:
        meta = entity["meta-type"]
        assert meta in ("builtin", "enum", "array", "object", "command", "event")
        if meta in ("command", "event"):
            check(entity["arg-type"])
            assert by_name[entity["arg-type"]]["meta-type"] == "object"
        if meta == "command":
            check(entity["ret-type"])
        if meta == "array":
            check(entity["element-type"])
            assert entity["name"] == f"[{entity['element-type']}]"
        if meta == "object":
            for member in entity["members"]:
                check(member["type"])
        if meta == "enum":
            assert [m["name"] for m in entity["members"]] == entity["values"]
        if meta == "builtin":
            assert entity["json-type"] in ("string", "int", "number", "boolean", "null",
                                           "value")
        if meta not in ("builtin", "command", "event", "array"):
            assert entity["name"].isdigit(), "non-ABI type names are masked, as QEMU does"


def _arguments(schema: list[dict[str, Any]], command: str) -> list[dict[str, Any]]:
    by_name = {entity["name"]: entity for entity in schema}
    members: list[dict[str, Any]] = by_name[by_name[command]["arg-type"]]["members"]
    return members


def test_the_schema_and_the_argument_checks_agree(client: RawClient) -> None:
    """For every command: each required member is checked, and nothing else is accepted."""
    schema = _ok(client, "query-qmp-schema")
    for command in [e["name"] for e in schema if e["meta-type"] == "command"]:
        if command in ("quit", "qmp_capabilities", "device_add"):
            continue  # quit quits; capabilities are negotiated; device_add is open-ended
        members = _arguments(schema, command)
        required = [m["name"] for m in members if "default" not in m]
        if required:
            assert _error(client, command) == {
                "class": "GenericError", "desc": f"Parameter '{required[0]}' is missing"}
        filled = {m["name"]: _sample(m["type"]) for m in members if "default" not in m}
        assert _error(client, command, {**filled, "x-nosuch": 1}) == {
            "class": "GenericError", "desc": "Parameter 'x-nosuch' is unexpected"}, command


def _sample(type_name: str) -> object:
    return {"str": "nosuch", "int": 0, "number": 1.0, "bool": False}.get(type_name, "x")


def test_device_del_and_device_add_arguments_in_the_schema(client: RawClient) -> None:
    schema = _ok(client, "query-qmp-schema")
    assert _arguments(schema, "device_del") == [
        {"name": "id", "type": "str"}, {"name": "x-timeout", "type": "number", "default": None}]
    assert [m["name"] for m in _arguments(schema, "device_add")] == ["driver", "id"]
    events = {e["name"] for e in schema if e["meta-type"] == "event"}
    assert {"DEVICE_DELETED", "DEVICE_UNPLUG_GUEST_ERROR", "ACPI_DEVICE_OST",
            "SHUTDOWN"} <= events


# -- the new commands --------------------------------------------------------------------


def test_qom_tree_follows_plug_and_unplug(
    client: RawClient, machine: VirtMachine, guest: GuestDriver
) -> None:
    machine_props = {p["name"]: p["type"] for p in _ok(client, "qom-list", {"path": "/machine"})}
    assert machine_props["peripheral"] == "child<container>"
    assert machine_props["unattached"] == "child<container>"
    assert _ok(client, "qom-get", {"path": "/machine", "property": "smp"})["maxcpus"] == 6
    cold = {p["name"] for p in _ok(client, "qom-list", {"path": "/machine/unattached"})}
    assert {"device[0]", "device[3]"} <= cold and "device[4]" not in cold
    assert _ok(client, "qom-list", {"path": "/machine/peripheral"}) == [
        {"name": "type", "type": "string"}]

    _ok(client, "device_add", ADD_CORE4)
    cpu = {p["name"]: p["type"] for p in _ok(client, "qom-list",
                                             {"path": "/machine/peripheral/core4"})}
    assert cpu["core-id"] == "int32" and cpu["mp-affinity"] == "uint64"
    get = {name: _ok(client, "qom-get", {"path": "core4", "property": name})  # partial path
           for name in ("type", "core-id", "mp-affinity", "hotplugged", "realized")}
    assert get == {"type": "max-arm-cpu", "core-id": 4,
                   "mp-affinity": machine.vcpus[4].slot.arch_id, "hotplugged": True,
                   "realized": True}
    assert _ok(client, "qom-get", {"path": "/machine/peripheral", "property": "core4"}) == \
        "/machine/peripheral/core4"

    _ok(client, "device_del", {"id": "core4"})
    guest.handle_hotplug()
    guest.handle_hotplug()
    assert _error(client, "qom-list", {"path": "/machine/peripheral/core4"}) == {
        "class": "DeviceNotFound", "desc": "Device '/machine/peripheral/core4' not found"}
    assert _error(client, "qom-get", {"path": "/machine", "property": "nosuch"}) == {
        "class": "GenericError", "desc": "Property 'virt-machine.nosuch' not found"}


def test_cpu_definitions_machines_and_device_properties(client: RawClient) -> None:
    definitions = _ok(client, "query-cpu-definitions")
    assert {"name": "max", "typename": "max-arm-cpu", "static": False,
            "deprecated": False} in definitions
    machines = _ok(client, "query-machines")
    assert machines[0]["name"] == "virt" and machines[0]["hotpluggable-cpus"] is True
    assert machines[0]["cpu-max"] == 512 and machines[0]["acpi"] is True
    props = {p["name"]: p["type"] for p in _ok(client, "device-list-properties",
                                               {"typename": "max-arm-cpu"})}
    assert {"socket-id", "cluster-id", "core-id", "thread-id"} <= set(props)
    assert _error(client, "device-list-properties", {"typename": "e1000"}) == {
        "class": "DeviceNotFound", "desc": "Device 'e1000' not found"}


def test_query_name_is_empty_without_a_name(client: RawClient) -> None:
    assert _ok(client, "query-name") == {}


def test_human_monitor_command_drives_the_cli_monitor(
    client: RawClient, machine: VirtMachine
) -> None:
    assert _ok(client, "human-monitor-command", {"command-line": "info status"}) == \
        "VM status: running\r\n"
    listing = _ok(client, "human-monitor-command", {"command-line": "info"})
    assert [line.split()[1] for line in listing.split("\r\n") if line][:3] == \
        ["hotpluggable-cpus", "cpus", "status"]
    answer = _ok(client, "human-monitor-command",
                 {"command-line": "device_add max-arm-cpu,id=core4,core-id=4", "cpu-index": 0})
    assert answer == "CPU 4 plugged as /machine/peripheral/core4\r\n"
    assert machine.vcpus[4].enabled
    assert _error(client, "human-monitor-command",
                  {"command-line": "info status", "cpu-index": 5}) == {
        "class": "GenericError", "desc": "Parameter 'cpu-index' expects a CPU number"}


def test_hmp_quit_quits(raw_client: RawFactory, machine: VirtMachine) -> None:
    client = raw_client()
    assert _ok(client, "human-monitor-command", {"command-line": "quit"}) == ""
    with pytest.raises(EOFError):
        while True:  # events (SHUTDOWN) until the server hangs up
            assert "event" in client.read()
    assert machine.is_shut_down


@pytest.mark.parametrize("value", ["4", "0x4", "04", " 4", "+4", 4.0])
def test_device_add_takes_what_qemu_6_2_to_9_1_took(
    client: RawClient, machine: VirtMachine, value: object
) -> None:
    """QemuOpts printed every value and parsed it back as the command line does."""
    assert _ok(client, "device_add", {**ADD_CORE4, "core-id": value}) == {}
    assert machine.vcpus[4].device_id == "core4"


def test_cancel_and_timeout_over_qmp(
    raw_client: RawFactory, machine: VirtMachine, guest: GuestDriver
) -> None:
    client = raw_client()
    _ok(client, "device_add", ADD_CORE4)
    guest.handle_hotplug()
    _ok(client, "device_del", {"id": "core4", "x-timeout": 3600})
    client.send(b'{"execute": "x-device-unplug-cancel", "arguments": {"id": "core4"}}\n')
    messages = [client.read()]
    while "return" not in messages[-1]:
        messages.append(client.read())
    event = next(m for m in messages if m.get("event") == "DEVICE_UNPLUG_GUEST_ERROR")
    assert event["data"] == {"device": "core4", "path": "/machine/peripheral/core4"}
    assert _error(client, "x-device-unplug-cancel", {"id": "core4"})["desc"] == \
        "Device core4 has no unplug pending; nothing to cancel"
    assert _error(client, "device_del", {"id": "core4", "x-timeout": -1})["desc"] == \
        "device_del timeout must be a positive number of seconds, not -1"
    assert guest.scan() == [] and machine.vcpus[4].enabled


def test_query_cpus_fast_gives_each_cpu_its_own_thread(client: RawClient) -> None:
    threads = [cpu["thread-id"] for cpu in _ok(client, "query-cpus-fast")]
    assert len(threads) == 4 and len(set(threads)) == 4
