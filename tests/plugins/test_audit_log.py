"""The bundled audit-log plugin, loaded through its entry point like any third-party plugin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vcpuhp import MachineConfig, PluginManager, PolicyRefused, VirtMachine
from vcpuhp_null import GuestDriver


def test_plugin_is_loaded_from_its_entry_point() -> None:
    pm = PluginManager()
    assert pm.pm.has_plugin("audit-log")
    assert not pm.failures


def test_audit_log_records_the_hotplug_story(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("VCPUHP_AUDIT_LOG", str(log))
    with VirtMachine(MachineConfig.build("cpus=2,maxcpus=4")) as machine:
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


def test_cpu_quota_refuses_plugs_beyond_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VCPUHP_CPU_QUOTA", "3")
    with VirtMachine(MachineConfig.build("cpus=2,maxcpus=4")) as machine:
        machine.device_add("max-arm-cpu", "core2", **{"core-id": 2})
        before = machine.snapshot_bytes()
        with pytest.raises(PolicyRefused, match="CPU quota reached: 3 of 3"):
            machine.device_add("max-arm-cpu", "core3", **{"core-id": 3})
        assert machine.snapshot_bytes() == before
