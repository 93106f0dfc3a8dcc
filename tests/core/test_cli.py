"""The vcpuhp command: run with a monitor, backends, demo, and its errors."""

from __future__ import annotations

import pytest

from cli_process import run_vcpuhp
from vcpuhp.cli import main
from vcpuhp.plugins import KNOWN_BACKENDS, PluginManager


def test_unknown_accel_names_installed_backends_and_install_hints() -> None:
    result = run_vcpuhp("run", "--accel", "nosuch")
    assert result.returncode == 2
    assert "No vcpuhp backend named 'nosuch'. Installed backends: " in result.stderr
    assert "null" in result.stderr
    installed = PluginManager().backends.names()
    missing = [name for name in KNOWN_BACKENDS if name not in installed]
    for name in missing:  # not on PyPI yet: the hint installs from the source tree
        assert f"{name}: pip install -e backends/{name} in a vcpuhp source checkout" \
            in result.stderr
    assert ("Known backends you can install" in result.stderr) == bool(missing)


def test_bad_smp_is_a_clear_error() -> None:
    result = run_vcpuhp("run", "--accel", "null", "--smp", "cpus=4,maxcpus=2")
    assert result.returncode == 2
    assert "maxcpus (2) must be equal to or greater than cpus (4)" in result.stderr


def test_monitor_session_shows_masks_change() -> None:
    script = "\n".join([
        "info cpus",
        "device_add max-arm-cpu,id=core4,core-id=4",
        "device_add max-arm-cpu,id=core9,core-id=9",
        "info hotpluggable-cpus",
        "quit",
    ]) + "\n"
    result = run_vcpuhp("run", "--accel", "null", "--smp", "cpus=4,maxcpus=6", stdin=script)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "enabled  0-3" in out and "online   0-1" in out
    assert "CPU 4 plugged as /machine/peripheral/core4" in out
    assert "Error: CPU core-id 9 is out of range 0-5" in out
    assert 'qom_path: "/machine/peripheral/core4"' in out


def test_backends_lists_viability_and_capabilities(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "null" in out and "viable" in out and "parks_vcpus" in out


def test_demo_on_null_shows_the_seed_masks() -> None:
    result = run_vcpuhp("demo", "--accel", "null")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("machine|")]
    assert lines[0] == "machine| possible 0-5 present 0-5 enabled 0-3 online 0-1"
    assert lines[1].startswith("machine| possible 0-5 present 0-5 enabled 0-4 online 0-1,4")
    assert lines[2].startswith("machine| possible 0-5 present 0-5 enabled 0-3 online 0-1")
    assert "event DEVICE_DELETED device=core4" in result.stdout
    assert "'machine| ' lines are the machine's own view" in result.stdout  # item 11
