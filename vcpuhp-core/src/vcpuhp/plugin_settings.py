"""Which plugins a machine loads, and their options.

One :class:`PluginSettings` per machine (``MachineConfig(plugins=...)``),
built from the command line (``--plugin NAME[,key=value...]``,
``--no-plugin NAME``, ``--no-plugin-autoload``), a machine configuration file
(``[plugins]`` and ``[plugin.NAME]`` tables) or Python. Sources are combined
with :meth:`PluginSettings.over`: the higher-precedence source wins per
plugin and per option.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from vcpuhp.errors import ConfigError


def _frozen(options: Mapping[str, Mapping[str, str]]) -> Mapping[str, Mapping[str, str]]:
    return MappingProxyType({name: MappingProxyType(dict(opts)) for name, opts in options.items()})


@dataclass(frozen=True)
class PluginSettings:
    """Plugin selection and configuration for one machine.

    :param autoload: load every installed plugin (``vcpuhp.plugins`` entry
        points) not in ``disable``; ``False`` loads only those in ``enable``;
        ``None`` (not said) is ``True`` unless a lower-precedence source says.
    :param enable: plugins to load even without autoload, each with its
        options (``{"audit-log": {"path": "/tmp/a.jsonl"}}``).
    :param disable: plugins never to load, even if installed and broken.
    """

    autoload: bool | None = None
    enable: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    disable: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        both = sorted(set(self.enable) & set(self.disable))
        if both:
            raise ConfigError(
                f"plugin {both[0]!r} is both enabled and disabled; name it in one of them"
            )
        object.__setattr__(self, "enable", _frozen(self.enable))
        object.__setattr__(self, "disable", frozenset(self.disable))

    @classmethod
    def only(cls, *names: str, **options: Mapping[str, str]) -> PluginSettings:
        """Load no plugin but ``names`` (and those given options by keyword)."""
        enable: dict[str, dict[str, str]] = {name: {} for name in names}
        enable.update({name.replace("_", "-"): dict(opts) for name, opts in options.items()})
        return cls(autoload=False, enable=enable)

    def options_for(self, name: str) -> Mapping[str, str]:
        """The options configured for plugin ``name`` (empty if none)."""
        return self.enable.get(name, MappingProxyType({}))

    def wants(self, name: str) -> bool:
        """Whether an installed plugin called ``name`` is loaded under these settings."""
        if name in self.disable:
            return False
        return self.autoloads or name in self.enable

    @property
    def autoloads(self) -> bool:
        """Whether every installed plugin not disabled is loaded."""
        return self.autoload is not False

    def over(self, lower: PluginSettings) -> PluginSettings:
        """These settings with ``lower``'s filled in where these say nothing.

        A plugin this enables is no longer disabled by ``lower`` and the other
        way round; options merge per key, these winning; autoload is this one's.
        """
        enable: dict[str, dict[str, str]] = {
            name: dict(opts) for name, opts in lower.enable.items() if name not in self.disable
        }
        for name, opts in self.enable.items():
            enable.setdefault(name, {}).update(opts)
        disable = (lower.disable - set(self.enable)) | self.disable
        autoload = self.autoload if self.autoload is not None else lower.autoload
        return PluginSettings(autoload, enable, disable)


def parse_plugin_option(text: str) -> tuple[str, dict[str, str]]:
    """``NAME[,key=value...]`` (the ``--plugin`` syntax) -> name and options."""
    name, *pairs = text.split(",")
    if not name:
        raise ConfigError(f"--plugin {text!r}: name the plugin first (NAME[,key=value...])")
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--plugin {name}: {pair!r} is not key=value")
        options[key] = value
    return name, options


def from_cli(plugins: Iterable[str], disabled: Iterable[str],
             autoload: bool | None = None) -> PluginSettings:
    """Settings from ``--plugin`` / ``--no-plugin`` / ``--no-plugin-autoload``."""
    enable: dict[str, dict[str, str]] = {}
    for text in plugins:
        name, options = parse_plugin_option(text)
        enable.setdefault(name, {}).update(options)
    return PluginSettings(autoload, enable, frozenset(disabled))


__all__ = ["PluginSettings", "from_cli", "parse_plugin_option"]
