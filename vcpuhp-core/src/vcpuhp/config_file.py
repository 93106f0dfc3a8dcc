"""The machine configuration file, and which source wins for each setting.

A machine file (TOML, ``vcpuhp run --config machine.toml``) names the
accelerator with its options and the plugins with theirs::

    [accel]
    name = "tcg-unicorn"          # or, at the top: accel = "tcg-unicorn"
    [accel.options]
    tb-size = 64

    [plugins]
    autoload = false              # load only the plugins named below
    disable = ["noisy-plugin"]    # never load these, even if broken

    [plugin.audit-log]            # load audit-log with these options
    path = "/var/log/vcpuhp.jsonl"
    quota = 6

Precedence, highest first: the command line, the environment
(``VCPUHP_ACCEL=NAME[,key=value...]``), the machine file, the default
(tcg-unicorn where it can run, else null). The accelerator's *name* comes
from the highest source that gives one; its *options* are merged from every
source that names that same accelerator, higher sources winning per key
(options given for another accelerator are ignored). Plugins merge the same
way (:meth:`~vcpuhp.plugin_settings.PluginSettings.over`): ``--no-plugin X``
beats ``[plugin.X]`` in the file, ``--plugin X,k=v`` beats the file's
``disable`` and its ``k``.

Option values may be strings, integers, floats or booleans in the file; they
reach backends and plugins as strings (``true``/``false`` for booleans),
exactly as from the command line.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from vcpuhp.errors import ConfigError
from vcpuhp.plugin_settings import PluginSettings

ACCEL_ENV: Final = "VCPUHP_ACCEL"
"""Environment variable naming the accelerator (``NAME[,key=value...]``)."""
_TOP_KEYS: Final = ("accel", "plugins", "plugin")
_ACCEL_KEYS: Final = ("name", "options")
_PLUGINS_KEYS: Final = ("autoload", "disable")


@dataclass(frozen=True)
class MachineFile:
    """What a machine file says (``None``/empty where it says nothing)."""

    path: Path | None = None
    accel: str | None = None
    accel_options: Mapping[str, str] = field(default_factory=dict)
    plugins: PluginSettings = field(default_factory=PluginSettings)


@dataclass(frozen=True)
class AccelChoice:
    """The accelerator a machine gets, its options, and where the name came from."""

    name: str
    options: Mapping[str, str]
    source: str
    """``command line``, ``environment (VCPUHP_ACCEL)``, ``file PATH`` or ``default``."""


def _where(path: Path, key: str) -> str:
    return f"{path}: {key}"


def _option_value(path: Path, key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ConfigError(f"{_where(path, key)} = {value!r}: an option value must be a string, "
                      "number or boolean")


def _options(path: Path, key: str, table: Any) -> dict[str, str]:
    if not isinstance(table, dict):
        raise ConfigError(f"{_where(path, key)} must be a table of option = value")
    return {name: _option_value(path, f"{key}.{name}", value) for name, value in table.items()}


def _unknown(path: Path, where: str, table: Mapping[str, Any], valid: tuple[str, ...]) -> None:
    unknown = sorted(set(table) - set(valid))
    if unknown:
        place = f"[{where}]" if where else "the top level"
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} in {place}; "
                          f"valid: {', '.join(valid)}")


def parse_machine_file(text: str, path: Path) -> MachineFile:
    """Parse the TOML ``text`` of machine file ``path``; :class:`ConfigError` naming the
    file and key for anything it does not understand."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    _unknown(path, "", data, _TOP_KEYS)
    accel, accel_options = _accel(path, data.get("accel"))
    return MachineFile(path, accel, accel_options, _plugins(path, data))


def _accel(path: Path, accel: Any) -> tuple[str | None, dict[str, str]]:
    if accel is None:
        return None, {}
    if isinstance(accel, str):
        return accel, {}
    if not isinstance(accel, dict):
        raise ConfigError(f"{_where(path, 'accel')} must be a name or an [accel] table")
    _unknown(path, "accel", accel, _ACCEL_KEYS)
    name = accel.get("name")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"{_where(path, 'accel.name')} must be a string")
    return name, _options(path, "accel.options", accel.get("options", {}))


def _plugins(path: Path, data: Mapping[str, Any]) -> PluginSettings:
    plugins = data.get("plugins", {})
    if not isinstance(plugins, dict):
        raise ConfigError(f"{_where(path, 'plugins')} must be a table")
    _unknown(path, "plugins", plugins, _PLUGINS_KEYS)
    autoload = plugins.get("autoload")
    if autoload is not None and not isinstance(autoload, bool):
        raise ConfigError(f"{_where(path, 'plugins.autoload')} must be true or false")
    disable = plugins.get("disable", [])
    if not isinstance(disable, list) or not all(isinstance(n, str) for n in disable):
        raise ConfigError(f"{_where(path, 'plugins.disable')} must be a list of plugin names")
    tables = data.get("plugin", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{_where(path, 'plugin')} must hold one [plugin.NAME] table per "
                          "plugin")
    enable = {name: _options(path, f"plugin.{name}", table) for name, table in tables.items()}
    try:
        return PluginSettings(autoload, enable, frozenset(disable))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_machine_file(path: Path) -> MachineFile:
    """Read and parse machine file ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read machine file {path}: {exc.strerror}") from None
    return parse_machine_file(text, path)


def parse_accel(text: str, where: str = "--accel") -> tuple[str, dict[str, str]]:
    """``NAME[,key=value...]`` -> name and options."""
    name, *pairs = text.split(",")
    if not name:
        raise ConfigError(f"{where}: {text!r} does not start with an accelerator name")
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{where}: {pair!r} is not key=value")
        options[key] = value
    return name, options


def choose_accel(
    cli: str | None,
    file: MachineFile | None,
    default: Callable[[], str],
    environ: Mapping[str, str] | None = None,
) -> AccelChoice:
    """The accelerator by precedence: command line > environment > file > default."""
    env = os.environ if environ is None else environ
    sources: list[tuple[str, str, dict[str, str]]] = []
    if cli:
        sources.append(("command line", *parse_accel(cli)))
    if env.get(ACCEL_ENV):
        sources.append((f"environment ({ACCEL_ENV})",
                        *parse_accel(env[ACCEL_ENV], ACCEL_ENV)))
    if file is not None and file.accel:
        sources.append((f"file {file.path}", file.accel, dict(file.accel_options)))
    if not sources:
        return AccelChoice(default(), {}, "default")
    source, name, _options_given = sources[0]
    options: dict[str, str] = {}
    for _source, other, given in reversed(sources):
        if other == name:
            options.update(given)
    return AccelChoice(name, options, source)


__all__ = [
    "ACCEL_ENV",
    "AccelChoice",
    "MachineFile",
    "choose_accel",
    "load_machine_file",
    "parse_accel",
    "parse_machine_file",
]
