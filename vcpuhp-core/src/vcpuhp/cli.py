"""The ``vcpuhp`` command.

``vcpuhp run``       build and run a machine, with a monitor on stdin and optional QMP
``vcpuhp demo``      the seed hotplug scenario, scripted, showing the masks change
``vcpuhp backends``  installed backends, their viability and capabilities
``vcpuhp plugins``   the plugins a machine would load, from where, their options, failures
``vcpuhp acpi dump`` the ACPI tables of a machine, one file per table
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from vcpuhp import events as ev
from vcpuhp.config import CPU_MODELS, MachineConfig
from vcpuhp.config_file import ACCEL_ENV, MachineFile, choose_accel, load_machine_file
from vcpuhp.errors import VcpuhpError
from vcpuhp.machine import VirtMachine
from vcpuhp.monitor import Monitor, MonitorQuit
from vcpuhp.plugin_settings import PluginSettings, from_cli
from vcpuhp.plugins import PluginManager

PREFERRED_BACKENDS = ("tcg-unicorn", "null")


def default_accel(plugins: PluginManager) -> str:
    """The first installed, viable backend of :data:`PREFERRED_BACKENDS`."""
    for row in plugins.backends.describe():
        if row["name"] == PREFERRED_BACKENDS[0] and row["viable"]:
            return str(row["name"])
    return PREFERRED_BACKENDS[1]


def _machine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--smp", default="cpus=4,maxcpus=6",
                        help="QEMU -smp: cpus=N,maxcpus=M,sockets=,clusters=,cores=,threads=")
    parser.add_argument("--accel", default=None,
                        help=f"backend NAME[,opt=value...] (else ${ACCEL_ENV}, else the "
                             "--config file, else tcg-unicorn if usable, else null); see "
                             "'vcpuhp backends'")
    parser.add_argument("--cpu", default="max", choices=CPU_MODELS, help="CPU model")
    parser.add_argument("-m", "--memory", default="256M", help="RAM size (e.g. 256M, 1G)")
    parser.add_argument("--kernel", type=Path, default=None,
                        help="arm64 Linux Image (booted with ACPI), or an ELF or raw guest "
                             "image (default: the bundled guest)")
    parser.add_argument("--initrd", type=Path, default=None,
                        help="initial ramdisk for a Linux --kernel")
    parser.add_argument("--append", default=None,
                        help="guest command line (default: maxcpus=2)")
    parser.add_argument("--allow-cold-unplug", action="store_true",
                        help="policy: allow device_del of CPUs enabled at boot")
    _plugin_args(parser)


def _plugin_args(parser: argparse.ArgumentParser) -> None:
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


def _build_machine(args: argparse.Namespace, plugins: PluginManager) -> VirtMachine:
    accel = choose_accel(args.accel, _machine_file(args), lambda: default_accel(plugins))
    config = MachineConfig.build(
        args.smp, cpu=args.cpu, accel=accel.name, memory=args.memory, kernel=args.kernel,
        initrd=args.initrd, guest_cmdline=args.append if args.append is not None else "maxcpus=2",
        allow_cold_unplug=args.allow_cold_unplug, backend_options=dict(accel.options),
        plugins=plugins.settings,
    )
    return VirtMachine(config, plugins=plugins)  # refuses to start if a plugin failed


def _guest_maxcpus(machine: VirtMachine) -> int | None:
    for word in machine.config.guest_cmdline.split():
        key, _, value = word.partition("=")
        if key == "maxcpus" and value.isdigit():
            return int(value)
    return None


@contextlib.contextmanager
def _cooperative_guest(machine: VirtMachine, enabled: bool) -> Iterator[None]:
    """On a backend that runs no guest code, let the null autopilot play the guest."""
    if not enabled or machine.backend.capabilities.executes_guest_code:
        yield
        return
    try:
        from vcpuhp_null.autopilot import AutopilotGuest
    except ImportError:
        yield
        return
    guest = AutopilotGuest(machine, _guest_maxcpus(machine))
    guest.start()
    try:
        yield
    finally:
        guest.close()


def _print_console(out: TextIO) -> ev.Listener:
    def on_event(event: ev.MachineEvent) -> None:
        if event.name == ev.CONSOLE:
            print(f"guest| {event.data['line']}", file=out, flush=True)
        elif event.name in (ev.DEVICE_DELETED, ev.DEVICE_UNPLUG_GUEST_ERROR, ev.VCPU_FAULT,
                            ev.SHUTDOWN, ev.GUEST_PANICKED):
            data = ", ".join(f"{k}={v}" for k, v in event.data.items() if v is not None)
            print(f"event {event.name} {data}", file=out, flush=True)
    return on_event


def cmd_run(args: argparse.Namespace, plugins: PluginManager) -> int:
    machine = _build_machine(args, plugins)
    out = sys.stdout
    machine.events.subscribe(_print_console(out))
    finished = threading.Event()
    panicked = threading.Event()
    machine.events.subscribe(lambda e: finished.set() if e.name == ev.SHUTDOWN else None)

    def on_panic(event: ev.MachineEvent) -> None:
        if event.name == ev.GUEST_PANICKED and args.on_crash == "poweroff":
            panicked.set()
            finished.set()

    machine.events.subscribe(on_panic)
    servers: list[Any] = []
    machine.realize()
    try:
        if args.qmp:
            from vcpuhp.qmp import QmpServer

            qmp = QmpServer(machine, args.qmp, allow_remote=args.qmp_allow_remote)
            qmp.start()
            servers.append(qmp)
            threading.Thread(target=_set_when_served, args=(qmp, finished),
                             name="vcpuhp-qmp-wait", daemon=True).start()
            print(f"QMP listening on {args.qmp}", file=out, flush=True)
        if args.qtest:
            from vcpuhp_null.protocol import ProtocolServer

            qtest = ProtocolServer(machine, args.qtest)
            qtest.start()
            servers.append(qtest)
            print(f"test protocol listening on {args.qtest}", file=out, flush=True)
        with _cooperative_guest(machine, enabled=not args.qtest):
            if args.monitor == "stdio":
                _monitor_loop(machine, sys.stdin, out, finished)
            else:
                signal.signal(signal.SIGTERM, lambda *_: finished.set())
                with contextlib.suppress(KeyboardInterrupt):
                    finished.wait()
    finally:
        for server in servers:
            server.close()
        machine.shutdown()
    if panicked.is_set():
        print("vcpuhp: the guest crashed (GUEST_PANICKED); exiting with status 1 "
              "(--on-crash=pause keeps the machine)", file=sys.stderr)
        return 1
    return 0


def _set_when_served(server: Any, finished: threading.Event) -> None:
    """Set ``finished`` once ``server`` stops serving (QMP ``quit``, guest shutdown)."""
    server.serve_forever()
    finished.set()


def _monitor_loop(machine: VirtMachine, inp: TextIO, out: TextIO,
                  finished: threading.Event) -> None:
    monitor = Monitor(machine)
    interactive = inp.isatty()
    print(f"vcpuhp monitor ({machine.backend.name}, -smp {machine.config.smp}); "
          "type 'help'", file=out, flush=True)
    while not finished.is_set():
        if interactive:
            print("(vcpuhp) ", end="", file=out, flush=True)
        line = inp.readline()
        if not line:
            return
        try:
            answer = monitor.execute(line)
        except MonitorQuit:
            return
        if answer:
            print(answer, file=out, flush=True)


def cmd_demo(args: argparse.Namespace, plugins: PluginManager) -> int:
    from vcpuhp.demo import run_demo

    machine = _build_machine(args, plugins)
    machine.events.subscribe(_print_console(sys.stdout))
    machine.realize()
    try:
        with _cooperative_guest(machine, enabled=True):
            return run_demo(machine, sys.stdout, cycles=args.cycles)
    finally:
        machine.shutdown()


def cmd_backends(args: argparse.Namespace, plugins: PluginManager) -> int:
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
    from vcpuhp.plugins import KNOWN_BACKENDS

    for name, dist in KNOWN_BACKENDS.items():
        if name not in plugins.backends.names():
            print(f"{name:<14} not installed: pip install {dist}")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vcpuhp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a machine with a monitor")
    _machine_args(run)
    run.add_argument("--qmp", default=None, help="QMP on unix:PATH or tcp:127.0.0.1:PORT")
    run.add_argument("--qmp-allow-remote", action="store_true",
                     help="let --qmp tcp: bind a non-loopback address")
    run.add_argument("--qtest", default=None,
                     help="null backend: serve the guest-side test protocol on unix:PATH")
    run.add_argument("--on-crash", choices=("poweroff", "pause"), default="poweroff",
                     help="when a vCPU fault leaves no CPU running (GUEST_PANICKED): exit with "
                          "status 1 (poweroff, default) or keep the machine paused for the "
                          "monitor/QMP (pause, like QEMU's -no-shutdown)")
    run.add_argument("--monitor", choices=("stdio", "none"), default="stdio",
                     help="monitor on stdin (default) or none (run until QMP quit/SIGTERM)")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="script the seed plug/unplug scenario")
    _machine_args(demo)
    demo.add_argument("--cycles", type=int, default=1, help="plug/unplug cycles to run")
    demo.set_defaults(func=cmd_demo)

    backends = sub.add_parser("backends", help="list installed backends")
    backends.add_argument("--json", action="store_true")
    backends.set_defaults(func=cmd_backends)

    plugins = sub.add_parser("plugins", help="list the plugins a machine would load")
    _plugin_args(plugins)
    plugins.add_argument("--json", action="store_true")
    plugins.set_defaults(func=cmd_plugins)

    try:
        from vcpuhp.acpi.cli import add_subcommand
    except ImportError:
        pass
    else:
        add_subcommand(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        plugins = PluginManager(settings=plugin_settings(args))
        return int(args.func(args, plugins))
    except VcpuhpError as exc:
        print(f"vcpuhp: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
