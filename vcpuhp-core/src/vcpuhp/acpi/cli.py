"""``vcpuhp acpi dump``: write a machine's ACPI tables, one raw file per table.

The files are named as ``acpidump -b`` names them (``apic.dat``,
``dsdt.dat``...). ``iasl -d`` disassembles every one but ``rsdp.dat``: the
RSDP is a pointer structure without a table header, which iasl refuses
("does not contain a valid ACPI table"). The command prints the exact
``iasl -d`` line for the tables at the end.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vcpuhp.config import CPU_MODELS, MachineConfig
from vcpuhp.description import MachineDescription

RSDP_FILE = "rsdp.dat"

if TYPE_CHECKING:
    from vcpuhp.plugins import PluginManager


def add_subcommand(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``acpi dump`` on the ``vcpuhp`` command's subparsers.

    The parsed arguments carry ``func(args, plugins) -> int``, the exit status.
    """
    acpi = subparsers.add_parser("acpi", help="ACPI tables of a machine")
    actions = acpi.add_subparsers(dest="acpi_command", required=True)
    dump = actions.add_parser(
        "dump", help="write one raw file per table (acpidump -b names)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dump.add_argument("--smp", default="cpus=4,maxcpus=6",
                      help="QEMU -smp: cpus=N,maxcpus=M,sockets=,clusters=,cores=,threads=")
    dump.add_argument("--cpu", default="max", choices=CPU_MODELS, help="CPU model")
    dump.add_argument("--allow-cold-unplug", action="store_true",
                      help="policy: CPUs enabled at boot get _EJ0 too")
    dump.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                      help="directory to write the tables to (created if missing)")
    dump.set_defaults(func=cmd_dump)


def cmd_dump(args: argparse.Namespace, plugins: PluginManager | None = None) -> int:
    """Describe the machine the options give (nothing is realized) and dump its tables."""
    from vcpuhp.acpi import build_tables

    config = MachineConfig.build(
        args.smp, cpu=args.cpu, accel="null", allow_cold_unplug=args.allow_cold_unplug
    )
    tables = build_tables(MachineDescription.of(config))
    paths = tables.dump(args.output)
    for path in paths:
        print(f"{path} {path.stat().st_size} bytes")
    disassemble = " ".join(shlex.quote(str(p)) for p in paths if p.name != RSDP_FILE)
    print(f"disassemble the tables (not {RSDP_FILE}, which has no table header): "
          f"iasl -d {disassemble}")
    return 0
