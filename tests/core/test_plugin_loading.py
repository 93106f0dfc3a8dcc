"""Installed plugins fail closed: load failures, unknown hooks, names, options, selection.

Each test installs its plugins for real: a module and a ``*.dist-info``
directory with ``entry_points.txt`` on ``sys.path``, which is what pip
leaves behind, so ``importlib.metadata`` finds them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_process import run_vcpuhp
from vcpuhp import MachineConfig, PluginManager, PolicyRefused, VirtMachine
from vcpuhp.errors import BackendNotFound, PluginError
from vcpuhp.plugin_settings import PluginSettings

Install = Callable[..., Path]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Install:
    """``install(dist, {module: source}, {group: {name: value}})``: a distribution on sys.path."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(dist: str, modules: dict[str, str], groups: dict[str, dict[str, str]]) -> Path:
        for module, source in modules.items():
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
            monkeypatch.delitem(sys.modules, module, raising=False)
        info = tmp_path / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text("".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items())
            for group, entries in groups.items()))
        return tmp_path

    return make


MISSPELT = """
from vcpuhp import hookimpl

@hookimpl
def vcpuhp_cpu_pluged(machine, vcpu):
    pass
"""


def _failure(pm: PluginManager, name: str) -> str:
    [failure] = [f for f in pm.plugin_failures() if f.name == name]
    return f"{failure.origin}: {failure.error}"


def test_a_misspelt_hook_is_a_load_failure_naming_plugin_and_hook(install: Install) -> None:
    install("typo-plugin", {"typo_mod": MISSPELT}, {"vcpuhp.plugins": {"typo": "typo_mod"}})
    pm = PluginManager()
    text = _failure(pm, "typo")
    assert "entry point typo = typo_mod in distribution typo-plugin 1.0" in text
    assert "implements unknown hook(s) 'vcpuhp_cpu_pluged' (did you mean " \
           "'vcpuhp_cpu_plugged'?)" in text
    assert not pm.pm.has_plugin("typo")


def test_an_unmarked_misspelt_hook_is_caught_too(install: Install) -> None:
    install("typo2", {"typo2_mod": "def vcpuhp_device_add_alowed(machine, slot, driver, "
                                   "device_id):\n    return 'no'\n"},
            {"vcpuhp.plugins": {"typo2": "typo2_mod"}})
    assert "'vcpuhp_device_add_alowed' (did you mean 'vcpuhp_device_add_allowed'?)" in \
        _failure(PluginManager(), "typo2")


def test_an_unmarked_hook_with_the_right_name_works(install: Install) -> None:
    install("plain", {"plain_mod": "def vcpuhp_device_add_allowed(machine, slot, driver, "
                                   "device_id):\n    return 'plain says no'\n"},
            {"vcpuhp.plugins": {"plain": "plain_mod"}})
    with VirtMachine(MachineConfig.build("cpus=1,maxcpus=2")) as machine, \
            pytest.raises(PolicyRefused, match="plain says no"):
        machine.device_add("max-arm-cpu", "c1", **{"core-id": 1})


def test_a_machine_refuses_to_start_with_a_failed_plugin(install: Install) -> None:
    install("typo-plugin", {"typo_mod": MISSPELT}, {"vcpuhp.plugins": {"typo": "typo_mod"}})
    with pytest.raises(PluginError) as info:
        VirtMachine(MachineConfig.build("cpus=1,maxcpus=2"))
    message = str(info.value)
    assert "plugin 'typo' (entry point typo = typo_mod in distribution typo-plugin 1.0)" in message
    assert "--no-plugin typo" in message and 'disable = ["typo"]' in message


def test_a_disabled_plugin_is_not_even_imported(install: Install) -> None:
    install("typo-plugin", {"typo_mod": MISSPELT + "\nraise ImportError('boom')\n"},
            {"vcpuhp.plugins": {"typo": "typo_mod"}})
    settings = PluginSettings(disable=frozenset({"typo"}))
    with VirtMachine(MachineConfig.build("cpus=1,maxcpus=2", plugins=settings)) as machine:
        assert machine.run_state.value == "running"
    assert "typo_mod" not in sys.modules
    [info] = [i for i in PluginManager(settings=settings).infos() if i.name == "typo"]
    assert info.status == "disabled"


def test_a_plugin_object_with_an_unknown_hook_is_refused_at_once() -> None:
    class Typo:
        def vcpuhp_cpu_unpluged(self, machine: object, vcpu: object) -> None:
            pass

    with pytest.raises(PluginError, match="unknown hook.*'vcpuhp_cpu_unpluged' "
                                          r"\(did you mean 'vcpuhp_cpu_unplugged'\?\)"):
        PluginManager([Typo()], load_entry_points=False)


def test_an_entry_point_whose_class_says_another_name_is_an_error(install: Install) -> None:
    install("named", {"named_mod": """
        from vcpuhp_null import NullBackend

        class Bar:
            name = "bar"
            def __init__(self, options):
                pass

        class BarBackend(NullBackend):
            name = "bar"
        """}, {"vcpuhp.plugins": {"foo": "named_mod:Bar"},
               "vcpuhp.backends": {"foo-backend": "named_mod:BarBackend"}})
    pm = PluginManager()
    assert "entry point 'foo' names class Bar, whose name is 'bar'" in _failure(pm, "foo")
    assert "bar" not in pm.backends.names() and "foo-backend" not in pm.backends.names()
    with pytest.raises(BackendNotFound, match="'foo-backend' is installed but failed to load: "
                                              "entry point 'foo-backend' names "
                                              "named_mod:BarBackend, whose name is 'bar'"):
        pm.backends.get("foo-backend")


CONFIGURABLE = """
class Limit:
    name = "limit"
    options = {"max": "refuse plugs beyond this many enabled CPUs"}

    def __init__(self, options):
        self.max = int(options.get("max", "99"))

    def vcpuhp_device_add_allowed(self, machine, slot, driver, device_id):
        if len(machine.cpu_masks().enabled) >= self.max:
            return f"limit {self.max}"
        return None
"""


def test_class_plugins_get_their_options_per_machine(install: Install) -> None:
    install("limit", {"limit_mod": CONFIGURABLE}, {"vcpuhp.plugins": {"limit": "limit_mod:Limit"}})
    strict = PluginSettings(enable={"limit": {"max": "1"}})
    with VirtMachine(MachineConfig.build("cpus=1,maxcpus=3", plugins=strict)) as one, \
            VirtMachine(MachineConfig.build("cpus=1,maxcpus=3")) as other:
        with pytest.raises(PolicyRefused, match="limit 1"):
            one.device_add("max-arm-cpu", "c1", **{"core-id": 1})
        other.device_add("max-arm-cpu", "c1", **{"core-id": 1})


def test_bad_options_are_load_failures(install: Install) -> None:
    install("limit", {"limit_mod": CONFIGURABLE, "plain_mod2": "X = 1\n"},
            {"vcpuhp.plugins": {"limit": "limit_mod:Limit", "plain2": "plain_mod2"}})
    pm = PluginManager(settings=PluginSettings(enable={"limit": {"maxx": "1"},
                                                       "plain2": {"a": "b"}}))
    assert "unknown option(s) maxx; valid: max" in _failure(pm, "limit")
    assert "takes no options (it is a module or object, not a class), but got a" in \
        _failure(pm, "plain2")


def test_without_autoload_only_the_named_plugins_load(install: Install) -> None:
    install("limit", {"limit_mod": CONFIGURABLE}, {"vcpuhp.plugins": {"limit": "limit_mod:Limit"}})
    none = PluginManager(settings=PluginSettings(autoload=False))
    assert not none.pm.has_plugin("limit") and not none.pm.has_plugin("audit-log")
    assert {i.name: i.status for i in none.infos()} == {"audit-log": "not enabled",
                                                        "limit": "not enabled"}
    only = PluginManager(settings=PluginSettings.only("limit"))
    assert only.pm.has_plugin("limit") and not only.pm.has_plugin("audit-log")


def test_naming_a_plugin_that_is_not_installed_is_a_failure() -> None:
    pm = PluginManager(settings=PluginSettings(enable={"nosuch": {}},
                                               disable=frozenset({"nosuch2"})))
    assert "no plugin named 'nosuch' is installed (installed: audit-log)" in \
        _failure(pm, "nosuch")
    assert "cannot disable 'nosuch2'" in _failure(pm, "nosuch2")
    with pytest.raises(PluginError, match="check the name"):
        pm.check()


def _vcpuhp(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_vcpuhp(*args, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})


def test_vcpuhp_run_stops_on_a_plugin_that_fails_to_load(install: Install,
                                                         tmp_path: Path) -> None:
    install("broken-plugin", {"broken_mod": "raise ImportError('needs libfoo')\n"},
            {"vcpuhp.plugins": {"broken": "broken_mod"}})
    result = _vcpuhp(tmp_path, "run", "--accel", "null", "--monitor", "none")
    assert result.returncode == 2, result
    assert "plugin 'broken' (entry point broken = broken_mod in distribution broken-plugin " \
           "1.0): cannot be imported: ImportError: needs libfoo" in result.stderr
    assert "--no-plugin broken" in result.stderr
    disabled = _vcpuhp(tmp_path, "demo", "--accel", "null", "--no-plugin", "broken")
    assert disabled.returncode == 0, disabled.stderr


def test_vcpuhp_plugins_lists_sources_options_and_failures(install: Install,
                                                           tmp_path: Path) -> None:
    install("broken-plugin", {"broken_mod": "raise ImportError('needs libfoo')\n"},
            {"vcpuhp.plugins": {"broken": "broken_mod"}})
    machine_file = tmp_path / "machine.toml"
    machine_file.write_text('[plugin.audit-log]\nquota = 4\npath = "/tmp/x"\n')
    result = _vcpuhp(tmp_path, "plugins", "--config", str(machine_file),
                     "--plugin", "audit-log,quota=5")
    assert result.returncode == 1  # a plugin failed to load
    lines = result.stdout.splitlines()
    assert "audit-log        loaded" in lines
    assert "    entry point:  audit-log = vcpuhp_audit_log:AuditLog" in lines
    assert "    distribution: vcpuhp-audit-log 0.1.0" in lines
    assert "    options:      path=/tmp/x, quota=5" in lines
    assert "broken           failed" in lines
    ok = _vcpuhp(tmp_path, "plugins", "--no-plugin", "broken", "--json")
    assert ok.returncode == 0, ok.stdout
    assert '"status": "disabled"' in ok.stdout
