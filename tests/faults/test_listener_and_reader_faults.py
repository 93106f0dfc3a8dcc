"""Listeners that raise or block, and clients that read slowly (issue 8, soak and faults).

None of them may stop the machine or another client; a slow reader loses nothing
as long as it keeps reading.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from soak.qmp_sync import SyncQmp
from vcpuhp import MachineConfig, VirtMachine
from vcpuhp import events as ev
from vcpuhp.events import MachineEvent
from vcpuhp.qmp import QmpServer
from vcpuhp_null import GuestDriver
from vcpuhp_null.protocol import ProtocolClient, ProtocolServer


@pytest.fixture
def served() -> Iterator[tuple[VirtMachine, GuestDriver, str]]:
    with tempfile.TemporaryDirectory(prefix="vflt") as directory:
        machine = VirtMachine(MachineConfig.build("cpus=1,maxcpus=3", accel="null"))
        machine.realize()
        driver = GuestDriver(machine)
        driver.boot()
        path = str(Path(directory) / "qmp.sock")
        server = QmpServer(machine, f"unix:{path}")
        server.start()
        try:
            yield machine, driver, path
        finally:
            server.close()
            machine.shutdown()


def _cycle(qmp: SyncQmp, driver: GuestDriver, n: int) -> None:
    qmp.command("device_add", {"driver": "max-arm-cpu", "id": f"c{n}", "core-id": 1})
    driver.handle_hotplug()
    qmp.command("device_del", {"id": f"c{n}"})
    driver.handle_hotplug()
    assert qmp.wait_event("DEVICE_DELETED")["data"]["device"] == f"c{n}"


def test_a_listener_that_always_raises_harms_nobody(
    served: tuple[VirtMachine, GuestDriver, str], caplog: pytest.LogCaptureFixture,
) -> None:
    machine, driver, path = served
    seen: list[str] = []

    def broken(event: MachineEvent) -> None:
        raise RuntimeError(f"listener bug on {event.name}")

    machine.events.subscribe(broken)
    machine.events.subscribe(lambda e: seen.append(e.name))
    qmp = SyncQmp(path)
    for n in range(5):
        _cycle(qmp, driver, n)
    machine.events.flush()
    assert seen.count(ev.DEVICE_DELETED) == 5, "later listeners get every event"
    assert "listener bug on DEVICE_DELETED" in caplog.text
    machine.check_invariants()
    qmp.close()


def test_a_listener_that_blocks_delays_events_not_commands(
    served: tuple[VirtMachine, GuestDriver, str],
) -> None:
    machine, driver, path = served
    release = threading.Event()
    machine.events.subscribe(lambda _e: release.wait(60))
    qmp = SyncQmp(path)
    try:
        qmp.command("device_add", {"driver": "max-arm-cpu", "id": "c1", "core-id": 1})
        driver.handle_hotplug()
        qmp.command("device_del", {"id": "c1"})
        driver.handle_hotplug()
        assert not machine.vcpus[1].enabled, "the machine went on"
        assert qmp.command("x-query-cpu-masks")["enabled"] == "0"
        assert not any(e["event"] == "DEVICE_DELETED" for e in qmp.events), \
            "the QMP event waits behind the blocked listener"
    finally:
        release.set()
    assert qmp.wait_event("DEVICE_DELETED")["data"]["device"] == "c1"
    qmp.close()


def test_a_slow_qmp_reader_gets_every_event_in_order(
    served: tuple[VirtMachine, GuestDriver, str],
) -> None:
    machine, _, path = served
    qmp = SyncQmp(path)
    count = 3000
    for n in range(count):  # far more than a socket buffer holds
        machine.events.emit(ev.ACPI_DEVICE_OST, info={"slot": str(n), "slot-type": "CPU",
                                                      "source": 1, "status": 0})
    got = []
    while len(got) < count:
        message = qmp.read()
        if message.get("event") == "ACPI_DEVICE_OST":
            got.append(int(message["data"]["info"]["slot"]))
        if len(got) % 500 == 0:
            time.sleep(0.01)  # a reader that takes its time
    assert got == list(range(count))
    assert qmp.command("query-status")["running"] is True
    qmp.close()


def test_a_slow_test_protocol_reader_gets_every_line(tmp_path: Path) -> None:
    with VirtMachine(MachineConfig.build("cpus=1,maxcpus=2", accel="null")) as machine:
        server = ProtocolServer(machine, f"unix:{tmp_path / 'q.sock'}")
        server.start()
        try:
            client = ProtocolClient.connect(f"unix:{tmp_path / 'q.sock'}")
            assert client("masks").startswith("OK")  # the connection is served (subscribed)
            for n in range(2000):
                machine.events.emit(ev.GUEST_ERROR, message=f"m{n}")
            assert client("masks").startswith("OK possible 0-1")  # after every event line
            messages = [e["message"] for e in client.events(ev.GUEST_ERROR)]
            assert messages == [f"m{n}" for n in range(2000)]
            client.close()
        finally:
            server.close()
