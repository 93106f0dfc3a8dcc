"""The machine file, and the precedence of command line, environment, file and default."""

from __future__ import annotations

from pathlib import Path

import pytest

from vcpuhp.cli import build_parser, plugin_settings
from vcpuhp.config_file import choose_accel, load_machine_file, parse_machine_file
from vcpuhp.errors import ConfigError
from vcpuhp.plugin_settings import PluginSettings

FILE = Path("machine.toml")
FULL = """
[accel]
name = "tcg-unicorn"
[accel.options]
tb-size = 64
slice-insns = 5000

[plugins]
autoload = false
disable = ["noisy"]

[plugin.audit-log]
path = "/var/log/vcpuhp.jsonl"
quota = 6
verbose = true
"""


def test_a_full_machine_file() -> None:
    machine = parse_machine_file(FULL, FILE)
    assert machine.accel == "tcg-unicorn"
    assert machine.accel_options == {"tb-size": "64", "slice-insns": "5000"}
    assert machine.plugins == PluginSettings(
        autoload=False, disable=frozenset({"noisy"}),
        enable={"audit-log": {"path": "/var/log/vcpuhp.jsonl", "quota": "6", "verbose": "true"}})


def test_the_accelerator_may_be_a_plain_string() -> None:
    assert parse_machine_file('accel = "null"\n', FILE).accel == "null"


@pytest.mark.parametrize(("text", "message"), [
    ("accel = [", "machine.toml: not valid TOML"),
    ("smp = 4\n", "unknown key 'smp' in the top level; valid: accel, plugins, plugin"),
    ("[accel]\nkind = 'x'\n", "unknown key 'kind' in [accel]; valid: name, options"),
    ("[accel.options]\nx = [1]\n", "accel.options.x = [1]: an option value must be a string"),
    ("[plugins]\nautoload = 'no'\n", "plugins.autoload must be true or false"),
    ("[plugins]\ndisable = 'x'\n", "plugins.disable must be a list of plugin names"),
    ("[plugins]\nenable = ['x']\n", "unknown key 'enable' in [plugins]; valid: autoload, "
                                     "disable"),
    ("[plugins]\ndisable = ['a']\n[plugin.a]\n", "plugin 'a' is both enabled and disabled"),
])
def test_a_bad_machine_file_says_where_and_what_is_valid(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_machine_file(text, FILE)
    assert str(info.value).startswith("machine.toml")
    assert message in str(info.value)


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read machine file .*nosuch\.toml"):
        load_machine_file(tmp_path / "nosuch.toml")


def _default() -> str:
    return "null"


FILE_TCG = parse_machine_file('[accel]\nname = "tcg-unicorn"\n[accel.options]\ntb-size = 64\n'
                              "slice-insns = 10\n", FILE)


def test_accelerator_precedence_is_cli_then_environment_then_file_then_default() -> None:
    env = {"VCPUHP_ACCEL": "tcg-unicorn,slice-insns=20"}
    cli = choose_accel("tcg-unicorn,tb-size=128", FILE_TCG, _default, env)
    assert (cli.name, cli.source) == ("tcg-unicorn", "command line")
    assert cli.options == {"tb-size": "128", "slice-insns": "20"}
    from_env = choose_accel(None, FILE_TCG, _default, env)
    assert (from_env.source, from_env.options) == ("environment (VCPUHP_ACCEL)",
                                                   {"tb-size": "64", "slice-insns": "20"})
    from_file = choose_accel(None, FILE_TCG, _default, {})
    assert (from_file.name, from_file.source) == ("tcg-unicorn", "file machine.toml")
    default = choose_accel(None, None, _default, {})
    assert (default.name, default.options, default.source) == ("null", {}, "default")


def test_options_for_another_accelerator_are_not_carried_over() -> None:
    choice = choose_accel("null", FILE_TCG, _default, {"VCPUHP_ACCEL": "kvm,x=1"})
    assert (choice.name, choice.options) == ("null", {})


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="VCPUHP_ACCEL: 'junk' is not key=value"):
        choose_accel(None, None, _default, {"VCPUHP_ACCEL": "null,junk"})


def test_plugin_options_on_the_command_line_beat_the_file(tmp_path: Path) -> None:
    machine_file = tmp_path / "m.toml"
    machine_file.write_text('[plugins]\nautoload = false\ndisable = ["b"]\n'
                            '[plugin.a]\nx = "1"\ny = "2"\n[plugin.c]\n')
    args = build_parser().parse_args([
        "plugins", "--config", str(machine_file), "--plugin", "a,x=9", "--plugin", "b",
        "--no-plugin", "c"])
    settings = plugin_settings(args)
    assert settings.autoload is False
    assert dict(settings.enable) == {"a": {"x": "9", "y": "2"}, "b": {}}
    assert settings.disable == {"c"}
    assert settings.wants("a") and settings.wants("b") and not settings.wants("c")
    assert not settings.wants("other")


def test_settings_merge_keeps_the_lower_autoload_unless_the_higher_says() -> None:
    lower = PluginSettings(autoload=False)
    assert PluginSettings().over(lower).autoloads is False
    assert PluginSettings(autoload=True).over(lower).autoloads is True


def test_run_takes_the_accelerator_and_plugins_from_env_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vcpuhp import cli
    from vcpuhp.plugins import PluginManager

    machine_file = tmp_path / "m.toml"
    machine_file.write_text('[accel]\nname = "null"\n[accel.options]\ndefer-start = "on"\n'
                            "[plugin.audit-log]\nquota = 2\n")

    def build(*extra: str) -> cli.VirtMachine:
        args = cli.build_parser().parse_args(["run", "--config", str(machine_file), *extra])
        return cli._build_machine(args, PluginManager(settings=cli.plugin_settings(args)))

    machine = build()
    assert machine.backend.name == "null" and machine.backend.options == {"defer-start": "on"}
    assert machine.plugins.pm.get_plugin("audit-log").quota == 2
    monkeypatch.setenv("VCPUHP_ACCEL", "null,defer-start=off")
    assert build().backend.options == {"defer-start": "off"}
    assert build("--accel", "null").backend.options == {"defer-start": "off"}
    assert build("--no-plugin", "audit-log").plugins.pm.get_plugin("audit-log") is None
