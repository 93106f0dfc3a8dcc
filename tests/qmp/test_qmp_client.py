"""The server driven by the real ``qemu.qmp`` client, as QEMU's own tooling would."""

from __future__ import annotations

import contextlib
import os

import pytest

from vcpuhp import RunState, VirtMachine
from vcpuhp.devices.ged import GED_EVENT_POWER_DOWN
from vcpuhp.psci import PsciFunction
from vcpuhp.qmp import QEMU_VERSION, QmpServer
from vcpuhp.qmp.commands import COMMANDS
from vcpuhp_null import GuestDriver
from vcpuhp_null.driver import OST_DEVICE_CHECK, OST_EJECT_REQUEST, OST_SUCCESS

from .helpers import connect, error_of, execute, next_event, run

ADD_CORE4 = {"driver": "max-arm-cpu", "id": "core4", "core-id": 4}


def test_greeting_and_negotiation(qmp_path: str) -> None:
    async def body() -> None:
        client = await connect(qmp_path)
        assert client.greeting is not None
        qmp = client.greeting._asdict()["QMP"]
        major, minor, micro = QEMU_VERSION
        assert qmp == {
            "version": {"qemu": {"major": major, "minor": minor, "micro": micro},
                        "package": "vcpuhp 0.1.0"},
            "capabilities": [],
        }
        assert await execute(client, "query-version") == qmp["version"]
        names = [c["name"] for c in await execute(client, "query-commands")]
        assert names == list(COMMANDS)
        error = await error_of(client, "qmp_capabilities")
        assert error.error_class == "CommandNotFound"
        assert str(error) == "Capabilities negotiation is already complete, command ignored"
        await client.disconnect()

    run(body())


def test_query_status_stop_and_cont_send_events(qmp_path: str, machine: VirtMachine) -> None:
    async def body() -> None:
        client = await connect(qmp_path)
        status = await execute(client, "query-status")
        assert status["status"] == "running" and status["running"] is True
        assert await execute(client, "stop") == {}
        stop = await next_event(client, "STOP")
        assert "data" not in stop and set(stop["timestamp"]) == {"seconds", "microseconds"}
        assert (await execute(client, "query-status"))["status"] == "paused"
        assert machine.run_state is RunState.PAUSED
        await execute(client, "cont")
        await next_event(client, "RESUME")
        assert (await execute(client, "query-status"))["running"] is True
        await client.disconnect()

    run(body())


def test_hotpluggable_cpus_have_qom_path_only_when_plugged(qmp_path: str) -> None:
    async def body() -> None:
        client = await connect(qmp_path)
        rows = await execute(client, "query-hotpluggable-cpus")
        by_core = {row["props"]["core-id"]: row for row in rows}
        assert sorted(by_core) == [0, 1, 2, 3, 4, 5]
        assert all(row["type"] == "max-arm-cpu" and row["vcpus-count"] == 1 for row in rows)
        assert set(by_core[0]["props"]) == {"socket-id", "cluster-id", "core-id", "thread-id"}
        assert [c for c, row in by_core.items() if "qom-path" in row] == [3, 2, 1, 0]
        await execute(client, "device_add", ADD_CORE4)
        rows = await execute(client, "query-hotpluggable-cpus")
        plugged = {row["props"]["core-id"]: row.get("qom-path") for row in rows}
        assert plugged[4] == "/machine/peripheral/core4"
        assert plugged[5] is None
        await client.disconnect()

    run(body())


def test_device_add_then_device_del_ends_in_device_deleted(
    qmp_path: str, machine: VirtMachine, guest: GuestDriver
) -> None:
    async def body() -> None:
        client = await connect(qmp_path)
        assert await execute(client, "device_add", ADD_CORE4) == {}
        guest.handle_hotplug()
        cpus = {c["cpu-index"]: c for c in await execute(client, "query-cpus-fast")}
        assert sorted(cpus) == [0, 1, 2, 3, 4]
        assert cpus[4]["qom-path"] == "/machine/peripheral/core4"
        assert cpus[4]["props"]["core-id"] == 4
        assert await execute(client, "x-query-cpu-masks") == {
            "possible": "0-5", "present": "0-5", "enabled": "0-4", "online": "0,4"}

        assert await execute(client, "device_del", {"id": "core4"}) == {}
        assert machine.vcpus[4].enabled, "device_del only requests removal"
        guest.handle_hotplug()
        deleted = await next_event(client, "DEVICE_DELETED")
        assert deleted["data"] == {"device": "core4", "path": "/machine/peripheral/core4"}
        masks = await execute(client, "x-query-cpu-masks")
        assert masks["enabled"] == "0-3"
        machine.check_invariants()
        await client.disconnect()

    run(body())


def test_acpi_device_ost_when_the_guest_writes_ost(
    qmp_path: str, guest: GuestDriver
) -> None:
    async def body() -> None:
        client = await connect(qmp_path)
        await execute(client, "device_add", ADD_CORE4)
        guest.ost(4, OST_DEVICE_CHECK, OST_SUCCESS)
        event = await next_event(client, "ACPI_DEVICE_OST")
        assert event["data"] == {"info": {"device": "core4", "slot": "4", "slot-type": "CPU",
                                          "source": OST_DEVICE_CHECK, "status": OST_SUCCESS}}
        status = await execute(client, "query-acpi-ospm-status")
        assert {"device": "core4", "slot": "4", "slot-type": "CPU", "source": 1,
                "status": 0} in status
        cold = next(row for row in status if row["slot"] == "0")
        assert "device" not in cold, "absent optional members are left out, not null"
        await client.disconnect()

    run(body())


def test_guest_refusing_an_unplug_is_device_unplug_guest_error(
    qmp_path: str, machine: VirtMachine, guest: GuestDriver
) -> None:
    async def body() -> None:
        client = await connect(qmp_path)
        await execute(client, "device_add", ADD_CORE4)
        guest.handle_hotplug()
        await execute(client, "device_del", {"id": "core4"})
        guest.ost(4, OST_EJECT_REQUEST, 0x81)
        event = await next_event(client, "DEVICE_UNPLUG_GUEST_ERROR")
        assert event["data"] == {"device": "core4", "path": "/machine/peripheral/core4"}
        assert machine.vcpus[4].enabled
        await client.disconnect()

    run(body())


@pytest.mark.parametrize(
    ("command", "arguments", "error_class", "desc"),
    [
        ("no-such-command", None, "CommandNotFound", "The command no-such-command has not "
         "been found"),
        ("device_add", {"id": "core4", "core-id": 4}, "GenericError",
         "Parameter 'driver' is missing"),
        ("device_del", None, "GenericError", "Parameter 'id' is missing"),
        ("device_del", {"id": 4}, "GenericError",
         "Invalid parameter type for 'id', expected: string"),
        ("device_add", {**ADD_CORE4, "core-id": "four"}, "GenericError",
         "Parameter 'core-id' expects integer"),
        ("device_add", {**ADD_CORE4, "core-id": True}, "GenericError",
         "Invalid parameter type for 'core-id', expected: integer"),
        ("device_add", {**ADD_CORE4, "driver": 7}, "GenericError",
         "Invalid parameter type for 'driver', expected: string"),
        ("query-status", {"verbose": True}, "GenericError", "Parameter 'verbose' is unexpected"),
        ("device_del", {"id": "core4", "force": True}, "GenericError",
         "Parameter 'force' is unexpected"),
        ("device_del", {"id": "nope"}, "DeviceNotFound", "Device 'nope' not found"),
        ("device_add", {**ADD_CORE4, "core-id": 9}, "GenericError",
         "CPU core-id 9 is out of range 0-5"),
        ("device_add", {**ADD_CORE4, "core-id": 2}, "GenericError", "is already plugged"),
        ("device_add", {**ADD_CORE4, "driver": "cortex-a57-arm-cpu"}, "GenericError",
         "does not match this machine's CPUs ('max-arm-cpu')"),
        ("device_add", {**ADD_CORE4, "driver": "virtio-net-pci"}, "GenericError",
         "valid: cortex-a57-arm-cpu, cortex-a72-arm-cpu, max-arm-cpu, host-arm-cpu"),
        ("device_add", {"driver": "max-arm-cpu", "id": "core4"}, "GenericError",
         "CPU core-id is not set; valid core-id values are 0-5"),
        ("device_add", {**ADD_CORE4, "speed": 3}, "GenericError",
         "Property 'max-arm-cpu.speed' not found"),
        ("device_del", {"id": "/machine/unattached/device[1]"}, "GenericError",
         "enabled at boot"),
        ("qmp_capabilities", {"enable": ["oob"]}, "CommandNotFound",
         "Capabilities negotiation is already complete"),
    ],
)
def test_bad_requests_get_qemus_error_classes_and_change_nothing(
    qmp_path: str, machine: VirtMachine, command: str, arguments: dict[str, object] | None,
    error_class: str, desc: str,
) -> None:
    async def body() -> None:
        client = await connect(qmp_path)
        before = machine.snapshot_bytes()
        error = await error_of(client, command, arguments)
        assert error.error_class == error_class
        assert desc in str(error)
        assert machine.snapshot_bytes() == before
        assert (await execute(client, "query-status"))["running"] is True
        await client.disconnect()

    run(body())


def test_events_go_to_every_negotiated_client(qmp_path: str, guest: GuestDriver) -> None:
    async def body() -> None:
        first, second = await connect(qmp_path, "first"), await connect(qmp_path, "second")
        await execute(first, "device_add", ADD_CORE4)
        guest.handle_hotplug()
        await execute(second, "device_del", {"id": "core4"})
        guest.handle_hotplug()
        for client in (first, second):
            event = await next_event(client, "DEVICE_DELETED")
            assert event["data"]["device"] == "core4"
            await client.disconnect()

    run(body())


def test_system_powerdown_sends_powerdown(qmp_path: str, machine: VirtMachine) -> None:
    async def body() -> None:
        client = await connect(qmp_path)
        assert await execute(client, "system_powerdown") == {}
        await next_event(client, "POWERDOWN")
        assert machine.ged.selector & GED_EVENT_POWER_DOWN, "the guest sees a power button"
        await client.disconnect()

    run(body())


def test_guest_reset_and_shutdown_are_forwarded(
    qmp_path: str, server: QmpServer, guest: GuestDriver
) -> None:
    async def body() -> None:
        client = await connect(qmp_path)
        guest.psci(0, PsciFunction.SYSTEM_RESET)
        reset = await next_event(client, "RESET")
        assert reset["data"] == {"guest": True, "reason": "guest-reset"}
        assert server.wait(0) is None
        guest.psci(0, PsciFunction.SYSTEM_OFF)
        shutdown = await next_event(client, "SHUTDOWN")
        assert shutdown["data"] == {"guest": True, "reason": "guest-shutdown"}
        await client.disconnect()

    run(body())
    assert server.wait(5) == "shutdown"


def test_quit_replies_then_shuts_down_and_closes(
    qmp_path: str, server: QmpServer, machine: VirtMachine
) -> None:
    async def body() -> None:
        client = await connect(qmp_path)
        watcher = await connect(qmp_path, "watcher")
        assert await execute(client, "quit") == {}
        event = await next_event(watcher, "SHUTDOWN")
        assert event["data"] == {"guest": False, "reason": "host-qmp-quit"}
        for gone in (client, watcher):
            with contextlib.suppress(EOFError):  # qemu.qmp re-raises the server's hang-up
                await gone.disconnect()

    run(body())
    assert server.serve_forever() == "quit"
    assert machine.run_state is RunState.SHUTDOWN and machine.memory is None
    server.close()
    assert not os.path.exists(qmp_path), "the socket is removed"
