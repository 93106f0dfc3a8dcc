"""The bundled audit-log plugin, loaded through its entry point and configured per machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vcpuhp import MachineConfig, PluginManager, PolicyRefused, VirtMachine
from vcpuhp.errors import PluginError
from vcpuhp.plugin_settings import PluginSettings
from vcpuhp_audit_log import AuditLog
from vcpuhp_null import GuestDriver


def test_plugin_is_loaded_from_its_entry_point_as_one_object_per_manager() -> None:
    first, second = PluginManager(), PluginManager()
    plugin = first.pm.get_plugin("audit-log")
    assert isinstance(plugin, AuditLog)
    assert plugin is not second.pm.get_plugin("audit-log")
    assert not first.failures


def test_audit_log_records_the_hotplug_story(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    settings = PluginSettings(enable={"audit-log": {"path": str(log)}})
    with VirtMachine(MachineConfig.build("cpus=2,maxcpus=4", plugins=settings)) as machine:
        driver = GuestDriver(machine)
        driver.boot()
        machine.device_add("max-arm-cpu", "core3", **{"core-id": 3})
        driver.handle_hotplug()
        machine.device_del("core3")
        driver.handle_hotplug()
    events = [(r["event"], r["cpu"]) for r in map(json.loads, log.read_text().splitlines())]
    assert events == [
        ("powered-on", 0), ("powered-on", 1), ("plugged", 3), ("powered-on", 3), ("ost", 3),
        ("powered-off", 3), ("unplugged", 3), ("ost", 3),
    ]


def test_two_machines_log_to_their_own_files(tmp_path: Path) -> None:
    paths = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    machines = [VirtMachine(MachineConfig.build("cpus=1,maxcpus=2", plugins=PluginSettings(
        enable={"audit-log": {"path": str(path)}}))) for path in paths]
    for machine in machines:
        machine.realize()
    machines[1].device_add("max-arm-cpu", "c1", **{"core-id": 1})
    for machine in machines:
        machine.shutdown()
    assert [json.loads(x)["event"] for x in paths[0].read_text().splitlines()] == ["powered-on"]
    assert [json.loads(x)["event"] for x in paths[1].read_text().splitlines()] == [
        "powered-on", "plugged"]


def test_cpu_quota_refuses_plugs_beyond_it() -> None:
    settings = PluginSettings(enable={"audit-log": {"quota": "3"}})
    with VirtMachine(MachineConfig.build("cpus=2,maxcpus=4", plugins=settings)) as machine:
        machine.device_add("max-arm-cpu", "core2", **{"core-id": 2})
        before = machine.snapshot_bytes()
        with pytest.raises(PolicyRefused, match="CPU quota reached: 3 of 3"):
            machine.device_add("max-arm-cpu", "core3", **{"core-id": 3})
        assert machine.snapshot_bytes() == before


def test_environment_variables_no_longer_configure_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VCPUHP_CPU_QUOTA", "1")
    with VirtMachine(MachineConfig.build("cpus=1,maxcpus=2")) as machine:
        machine.device_add("max-arm-cpu", "c1", **{"core-id": 1})


@pytest.mark.parametrize(("options", "message"), [
    ({"quota": "many"}, "quota='many' is not a whole number"),
    ({"quota": "0"}, "quota=0 must be at least 1"),
    ({"colour": "red"}, "unknown option(s) colour; valid: path, quota"),
])
def test_bad_options_stop_the_machine_naming_the_plugin(options: dict[str, str],
                                                        message: str) -> None:
    config = MachineConfig.build("cpus=1,maxcpus=2",
                                 plugins=PluginSettings(enable={"audit-log": options}))
    with pytest.raises(PluginError) as info:
        VirtMachine(config)
    text = str(info.value)
    assert "plugin 'audit-log' (entry point audit-log = vcpuhp_audit_log:AuditLog" in text
    assert message in text
    assert "--no-plugin audit-log" in text
