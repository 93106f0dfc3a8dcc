"""``vcpuhp demo`` and ``vcpuhp backends``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Final

from vcpuhp.cli.options import HelpFormatter, add_machine_options, build_machine, cooperative_guest
from vcpuhp.cli.output import OutputWriter
from vcpuhp.cli.run import event_printer
from vcpuhp.plugins import KNOWN_BACKENDS, PluginManager, install_hint

DEMO_LEGEND: Final = ("Output: 'machine| ' lines are the machine's own view of the CPU masks, "
                      "'guest| ' lines the guest's console, '> ' the commands the demo runs.")


def add_subcommands(sub: argparse._SubParsersAction[Any],
                    parents: list[argparse.ArgumentParser]) -> None:
    """Register ``demo`` and ``backends``."""
    demo = sub.add_parser("demo", help="script the seed plug/unplug scenario", parents=parents,
                          formatter_class=HelpFormatter)
    add_machine_options(demo)
    demo.add_argument("--cycles", type=int, default=1, help="plug/unplug cycles to run")
    demo.set_defaults(func=cmd_demo)

    backends = sub.add_parser("backends", help="list installed backends", parents=parents)
    backends.add_argument("--json", action="store_true", help="machine-readable output")
    backends.set_defaults(func=cmd_backends)


def cmd_demo(args: argparse.Namespace, plugins: PluginManager) -> int:
    """Run the seed scenario on the default (or chosen) backend."""
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


__all__ = ["add_subcommands", "cmd_backends", "cmd_demo"]
