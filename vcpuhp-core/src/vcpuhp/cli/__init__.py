"""The ``vcpuhp`` command.

``vcpuhp run``       build and run a machine, with a monitor on stdin and optional QMP
``vcpuhp demo``      the seed hotplug scenario, scripted, showing the masks change
``vcpuhp backends``  installed backends, their viability and capabilities
``vcpuhp plugins``   the plugins a machine would load, from where, their options, failures
``vcpuhp acpi dump`` the ACPI tables of a machine, one file per table

One module per concern: :mod:`~vcpuhp.cli.options` (machine options, also in
QEMU's single-dash spelling), :mod:`~vcpuhp.cli.run`, :mod:`~vcpuhp.cli.commands`
(demo, backends, plugins), :mod:`~vcpuhp.cli.output` (the non-blocking output path),
:mod:`~vcpuhp.cli.terminal` (readline input).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import vcpuhp
from vcpuhp.cli import commands, run
from vcpuhp.cli.options import default_accel, plugin_settings
from vcpuhp.errors import VcpuhpError
from vcpuhp.plugins import PluginManager

_log = logging.getLogger("vcpuhp.cli")


def _verbose_option(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="log debug messages")


def build_parser() -> argparse.ArgumentParser:
    """The ``vcpuhp`` argument parser (``-v`` works before or after the subcommand)."""
    parser = argparse.ArgumentParser(prog="vcpuhp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _verbose_option(parser, False)
    from vcpuhp.qmp.wire import QEMU_VERSION

    qemu = ".".join(map(str, QEMU_VERSION))
    parser.add_argument("--version", "-version", action="version",
                        version=f"vcpuhp {vcpuhp.__version__} (QMP as QEMU {qemu})")
    common = argparse.ArgumentParser(add_help=False)
    _verbose_option(common, argparse.SUPPRESS)  # after the subcommand: don't reset it
    sub = parser.add_subparsers(dest="command", required=True)
    run.add_subcommand(sub, [common])
    commands.add_subcommands(sub, [common])
    try:
        from vcpuhp.acpi.cli import add_subcommand
    except ImportError:
        pass
    else:
        add_subcommand(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; the exit status (2 for a bad option or configuration)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    _log.debug("vcpuhp %s %s", vcpuhp.__version__, " ".join(sys.argv[1:] if argv is None
                                                          else argv))
    try:
        plugins = PluginManager(settings=plugin_settings(args))
        return int(args.func(args, plugins))
    except VcpuhpError as exc:
        print(f"vcpuhp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vcpuhp: interrupted", file=sys.stderr)
        return 130


__all__ = ["build_parser", "default_accel", "main"]
