"""Command-line options that describe a machine, in vcpuhp's spelling and QEMU's.

Every machine option has a QEMU-style single-dash form too (``-smp 4``,
``-m 1G``, ``-accel tcg``, ``-cpu max``, ``-kernel``, ``-append``, ``-name``,
and for ``run`` ``-qmp`` and ``-monitor``), so a QEMU command line needs
few changes. QEMU's own suffixes are understood where they fit
(``-qmp unix:PATH,server=on,wait=off``, ``-m size=1G``); anything vcpuhp
cannot honour is an error saying what is valid.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final, TypeVar

from vcpuhp.config import CPU_MODELS, MachineConfig
from vcpuhp.config_file import ACCEL_ENV, MachineFile, choose_accel, load_machine_file
from vcpuhp.config_file import parse_accel as parse_accel_text
from vcpuhp.errors import ConfigError
from vcpuhp.machine import VirtMachine
from vcpuhp.plugin_settings import PluginSettings, from_cli
from vcpuhp.plugins import PluginManager

PREFERRED_BACKENDS: Final = ("tcg-unicorn", "null")
DEFAULT_SMP: Final = "cpus=4,maxcpus=6"
DEFAULT_GUEST_CMDLINE: Final = "maxcpus=2"
#: QEMU accelerator names that mean a vcpuhp backend of another name.
ACCEL_ALIASES: Final = {"tcg": "tcg-unicorn"}
_T = TypeVar("_T")
_QMP_FLAGS: Final = {"server": "on", "server=on": "on", "wait=off": "off", "nowait": "off"}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                    argparse.RawDescriptionHelpFormatter):
    """``--help`` shows each option's default and keeps the description's lines."""


def option_type(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """An argparse ``type=`` that reports a :class:`ConfigError`'s own message."""
    def convert(text: str) -> _T:
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__
    return convert


def default_accel(plugins: PluginManager) -> str:
    """The first installed, viable backend of :data:`PREFERRED_BACKENDS`."""
    for row in plugins.backends.describe():
        if row["name"] == PREFERRED_BACKENDS[0] and row["viable"]:
            return str(row["name"])
    return PREFERRED_BACKENDS[1]


def parse_accel(text: str) -> tuple[str, dict[str, str]]:
    """``NAME[,key=value...]`` -> backend name and options (``tcg`` means ``tcg-unicorn``)."""
    name, options = parse_accel_text(text)
    return ACCEL_ALIASES.get(name, name), options


def parse_qmp(text: str) -> str:
    """A ``-qmp`` value: vcpuhp's ``unix:PATH`` / ``tcp:HOST:PORT``, or QEMU's spelling
    with ``,server[=on]`` and ``,wait=off`` / ``,nowait`` (vcpuhp is always the server
    and never waits for a client before the guest starts)."""
    from vcpuhp.qmp import parse_address

    address, *flags = text.split(",")
    for flag in flags:
        if flag not in _QMP_FLAGS:
            raise ConfigError(
                f"-qmp: {flag!r} is not supported; vcpuhp serves QMP and never waits for a "
                "client before the guest runs: use server=on,wait=off (or leave them out)"
            )
    parse_address(address)  # ConfigError saying what is valid
    return address


def parse_memory(text: str) -> str:
    """A ``-m`` value: ``SIZE`` or QEMU's ``size=SIZE`` (slots/maxmem are not supported)."""
    if text.startswith("size="):
        text = text[len("size="):]
    if "," in text or "=" in text:
        raise ConfigError(f"-m {text!r}: only a size is supported (e.g. 256M, 1G)")
    return text


def parse_unplug_timeout(text: str) -> float:
    """``--unplug-timeout SECONDS``: a positive number."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"--unplug-timeout {text!r}: give a positive number of seconds")
    return value


def add_machine_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command that builds a machine."""
    parser.add_argument("--smp", "-smp", default=DEFAULT_SMP,
                        help="CPU topology as QEMU's -smp: "
                             "[cpus=]N,maxcpus=M,sockets=,clusters=,cores=,threads=")
    parser.add_argument("--accel", "-accel", default=None,
                        help=f"backend NAME[,opt=value...]; 'tcg' means tcg-unicorn; default: "
                             f"${ACCEL_ENV}, else the --config file, else tcg-unicorn if "
                             "usable here, else null (see 'vcpuhp backends')")
    parser.add_argument("--cpu", "-cpu", default=None, choices=CPU_MODELS,
                        help="CPU model (default: the backend's preferred one, else max)")
    parser.add_argument("-m", "--memory", default="256M",
                        help="RAM size, QEMU-style (256M, 1G; a plain number is MiB)")
    parser.add_argument("--kernel", "-kernel", type=Path, default=None,
                        help="arm64 Linux Image (booted with ACPI), or an ELF or raw guest "
                             "image (default: the bundled guest)")
    parser.add_argument("--initrd", "-initrd", type=Path, default=None,
                        help="initial ramdisk for a Linux --kernel")
    parser.add_argument("--append", "-append", default=DEFAULT_GUEST_CMDLINE,
                        help="guest command line")
    parser.add_argument("--name", "-name", default=None, help="machine name (QMP query-name)")
    parser.add_argument("--allow-cold-unplug", action="store_true",
                        help="policy: allow device_del of CPUs enabled at boot")
    parser.add_argument("--unplug-timeout", default=None, metavar="SECONDS",
                        help="withdraw a device_del the guest has not answered after this "
                             "long (DEVICE_UNPLUG_GUEST_ERROR); default: wait forever, as QEMU")
    add_plugin_options(parser)


def add_plugin_options(parser: argparse.ArgumentParser) -> None:
    """The machine-file and plugin options (``run``, ``demo``, ``plugins``)."""
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="machine file (TOML): [accel] and [plugins] / [plugin.NAME]; "
                             "the command line and the environment override it")
    parser.add_argument("--plugin", action="append", default=[], metavar="NAME[,key=value...]",
                        help="load plugin NAME with these options (repeatable)")
    parser.add_argument("--no-plugin", action="append", default=[], metavar="NAME",
                        help="do not load plugin NAME, even if it is installed (repeatable)")
    parser.add_argument("--no-plugin-autoload", action="store_true",
                        help="load only the plugins named by --plugin or the machine file")


def _machine_file(args: argparse.Namespace) -> MachineFile | None:
    path = getattr(args, "config", None)
    return load_machine_file(path) if path is not None else None


def plugin_settings(args: argparse.Namespace) -> PluginSettings:
    """The plugins a command's machine loads: the command line over the machine file."""
    if not hasattr(args, "plugin"):
        return PluginSettings()
    cli = from_cli(args.plugin, args.no_plugin, False if args.no_plugin_autoload else None)
    file = _machine_file(args)
    return cli.over(file.plugins) if file is not None else cli


def build_machine(args: argparse.Namespace, plugins: PluginManager,
                  default: Callable[[], str] | None = None) -> VirtMachine:
    """The machine the parsed options describe (not realized).

    :param default: the backend when neither the options, the environment nor
        the machine file name one (default: :func:`default_accel`).
    """
    accel = choose_accel(args.accel, _machine_file(args),
                         default or (lambda: default_accel(plugins)))
    name = ACCEL_ALIASES.get(accel.name, accel.name)
    cpu = args.cpu or plugins.backends.preferred_cpu_model(name)
    timeout = None if args.unplug_timeout is None else parse_unplug_timeout(args.unplug_timeout)
    config = MachineConfig.build(
        args.smp, cpu=cpu, accel=name,
        memory=parse_memory(args.memory), kernel=args.kernel, initrd=args.initrd,
        guest_cmdline=args.append, name=args.name, allow_cold_unplug=args.allow_cold_unplug,
        backend_options=dict(accel.options), unplug_timeout=timeout, plugins=plugins.settings,
    )
    return VirtMachine(config, plugins=plugins)  # refuses to start if a plugin failed


def guest_maxcpus(machine: VirtMachine) -> int | None:
    """The ``maxcpus=`` of the guest's command line, if any."""
    for word in machine.config.guest_cmdline.split():
        key, _, value = word.partition("=")
        if key == "maxcpus" and value.isdigit():
            return int(value)
    return None


@contextlib.contextmanager
def cooperative_guest(machine: VirtMachine, enabled: bool) -> Iterator[None]:
    """On a backend that runs no guest code, let the null autopilot play the guest."""
    if not enabled or machine.backend.capabilities.executes_guest_code:
        yield
        return
    try:
        from vcpuhp_null.autopilot import AutopilotGuest
    except ImportError:
        yield
        return
    guest = AutopilotGuest(machine, guest_maxcpus(machine))
    guest.start()
    try:
        yield
    finally:
        guest.close()


__all__ = [
    "ACCEL_ALIASES",
    "PREFERRED_BACKENDS",
    "HelpFormatter",
    "add_machine_options",
    "add_plugin_options",
    "build_machine",
    "cooperative_guest",
    "default_accel",
    "guest_maxcpus",
    "option_type",
    "parse_accel",
    "parse_memory",
    "parse_qmp",
    "plugin_settings",
]
