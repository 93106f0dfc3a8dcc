"""``vcpuhp demo``, ``vcpuhp backends`` and ``vcpuhp plugins``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

from vcpuhp.cli.options import (
    DEFAULT_GUEST_CMDLINE,
    HelpFormatter,
    add_machine_options,
    add_plugin_options,
    build_machine,
    cooperative_guest,
    default_accel,
)
from vcpuhp.cli.output import OutputWriter
from vcpuhp.cli.run import event_printer
from vcpuhp.plugins import KNOWN_BACKENDS, PluginManager, install_hint

DEMO_LEGEND: Final = ("Output: 'machine| ' lines are the machine's own view of the CPU masks, "
                      "'guest| ' lines the guest's console, '> ' the commands the demo runs.")


def add_subcommands(sub: argparse._SubParsersAction[Any],
                    parents: list[argparse.ArgumentParser]) -> None:
    """Register ``demo``, ``backends`` and ``plugins``."""
    demo = sub.add_parser("demo", help="script the seed plug/unplug scenario", parents=parents,
                          formatter_class=HelpFormatter)
    add_machine_options(demo)
    demo.add_argument("--cycles", type=int, default=1, help="plug/unplug cycles to run")
    demo.add_argument("--linux", nargs=2, type=Path, metavar=("KERNEL", "INITRD"),
                      help="Linux plays the guest: an arm64 kernel (>= 6.11) and the test "
                           "userland (python3 -m vcpuhp.testing.linux_userland builds it); "
                           "the masks shown are Linux's own. Default accel: kvm if usable; "
                           "default --append: console=ttyAMA0 earlycon maxcpus=2 quiet panic=-1")
    demo.set_defaults(func=cmd_demo)

    backends = sub.add_parser("backends", help="list installed backends", parents=parents)
    backends.add_argument("--json", action="store_true", help="machine-readable output")
    backends.set_defaults(func=cmd_backends)

    plugins = sub.add_parser("plugins", help="list the plugins a machine would load",
                             parents=parents)
    add_plugin_options(plugins)
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.set_defaults(func=cmd_plugins)


def cmd_demo(args: argparse.Namespace, plugins: PluginManager) -> int:
    """Run the seed scenario on the default (or chosen) backend."""
    if args.linux is not None:
        return _linux_demo(args, plugins)
    from vcpuhp.demo import run_demo

    out = OutputWriter(sys.stdout)
    try:
        machine = build_machine(args, plugins)
        machine.events.subscribe(event_printer(out.write_line))
        out.write_line(DEMO_LEGEND)
        machine.realize()
        try:
            with cooperative_guest(machine, enabled=True):
                return run_demo(machine, out.stream(), cycles=args.cycles)
        finally:
            machine.shutdown()
    finally:
        out.close()


def _linux_demo(args: argparse.Namespace, plugins: PluginManager) -> int:
    """``demo --linux KERNEL INITRD``: :mod:`vcpuhp.demo_linux`."""
    from vcpuhp.demo_linux import LINUX_APPEND, preferred_accel, run_linux_demo

    args.kernel, args.initrd = args.linux
    if args.append == DEFAULT_GUEST_CMDLINE:
        args.append = LINUX_APPEND
    out = OutputWriter(sys.stdout)
    try:
        machine = build_machine(args, plugins,
                                lambda: preferred_accel(plugins, default_accel(plugins)))
        machine.events.subscribe(event_printer(out.write_line))
        out.write_line(DEMO_LEGEND)
        try:
            return run_linux_demo(machine, out.stream(), cycles=args.cycles)
        finally:
            machine.shutdown()
    finally:
        out.close()


def cmd_backends(args: argparse.Namespace, plugins: PluginManager) -> int:
    """Installed backends, whether they work here, their capabilities; how to get the rest."""
    rows = plugins.backends.describe()
    if args.json:
        print(json.dumps({"backends": rows, "failures": [f.__dict__ for f in plugins.failures]},
                         indent=2))
        return 0
    for row in rows:
        caps = ", ".join(k for k, v in row["capabilities"].items() if v) or "-"
        status = "viable" if row["viable"] else f"not viable: {row['reason']}"
        print(f"{row['name']:<14} {status:<30} capabilities: {caps}  ({row['class']})")
    for failure in plugins.failures:
        print(f"{failure.name:<14} failed to load ({failure.group}): {failure.error}")
    for name in KNOWN_BACKENDS:
        if name not in plugins.backends.names():
            print(f"{name:<14} not installed: {install_hint(name)}")
    return 0


def cmd_plugins(args: argparse.Namespace, plugins: PluginManager) -> int:
    """List the plugins a machine would load; exit status 1 if one failed to load."""
    infos = plugins.infos()
    failures = plugins.plugin_failures()
    if args.json:
        print(json.dumps({"plugins": [i.as_dict() for i in infos],
                          "failures": [f.__dict__ for f in failures]}, indent=2))
        return 1 if failures else 0
    if not infos:
        print("no vcpuhp plugins installed (they register in the 'vcpuhp.plugins' "
              "entry-point group)")
    for info in infos:
        print(f"{info.name:<16} {info.status}")
        if info.entry_point:
            print(f"    entry point:  {info.entry_point}")
        if info.distribution:
            print(f"    distribution: {info.distribution}")
        if info.module:
            print(f"    module:       {info.module}")
        if info.options:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(info.options.items()))
            print(f"    options:      {shown}")
        if info.hooks:
            print(f"    hooks:        {', '.join(info.hooks)}")
    for failure in failures:
        origin = f" ({failure.origin})" if failure.origin else ""
        print(f"{failure.name}: failed to load{origin}: {failure.error}\n"
              f"    {failure.advice()}")
    return 1 if failures else 0


__all__ = ["add_subcommands", "cmd_backends", "cmd_demo", "cmd_plugins"]
