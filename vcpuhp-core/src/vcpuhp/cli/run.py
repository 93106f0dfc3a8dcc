"""``vcpuhp run``: a machine with a monitor on stdin, QMP and the test protocol optional.

When the command ends (as QEMU):

* ``quit`` in the monitor, QMP ``quit``, or the guest powering off
  (PSCI ``SYSTEM_OFF``): exit status 0, without waiting for more input;
* ``SIGINT`` (Ctrl-C), ``SIGTERM`` or ``SIGHUP``: ``vcpuhp: terminating on
  signal N`` on stderr, a clean shutdown, exit status 0;
* end of input on stdin (a script, CI, ``nohup``, ``</dev/null``) ends the
  *monitor* only: the machine keeps running until one of the above, as
  QEMU's does with ``-monitor stdio`` and stdin closed.

What it prints goes through :class:`~vcpuhp.cli.output.OutputWriter`, so
a stdout nobody reads never holds up the machine or its event listeners.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Final

from vcpuhp import events as ev
from vcpuhp.cli.options import (
    HelpFormatter,
    build_machine,
    cooperative_guest,
    option_type,
    parse_qmp,
)
from vcpuhp.cli.output import OutputWriter
from vcpuhp.cli.terminal import LineInput
from vcpuhp.machine import VirtMachine
from vcpuhp.monitor import Monitor, MonitorQuit
from vcpuhp.plugins import PluginManager

DESCRIPTION: Final = """\
Build and run a machine, with a monitor on stdin (readline editing and
history on a terminal; 'help' lists commands).

It ends, with exit status 0, on: 'quit' in the monitor, QMP 'quit', the
guest powering off, or SIGINT (Ctrl-C) / SIGTERM / SIGHUP ("terminating on
signal N"); with status 1 when the guest crashes (unless --on-crash pause).
End of input on stdin ends only the monitor: the machine runs on, as QEMU's
does with -monitor stdio.
"""
LEGEND: Final = ("Output: 'guest| ' lines are the guest's console (its PL011 UART), "
                 "'event ' lines are machine events; the monitor's answers are unprefixed.")
_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EventPrinter = Callable[[ev.MachineEvent], None]
_PRINTED_EVENTS: Final = (ev.DEVICE_DELETED, ev.DEVICE_UNPLUG_GUEST_ERROR, ev.VCPU_FAULT,
                          ev.SHUTDOWN, ev.GUEST_PANICKED)


def add_subcommand(sub: argparse._SubParsersAction[Any],
                   parents: list[argparse.ArgumentParser]) -> None:
    """Register ``run``."""
    from vcpuhp.cli.options import add_machine_options

    run = sub.add_parser("run", help="run a machine with a monitor", parents=parents,
                         description=DESCRIPTION, formatter_class=HelpFormatter)
    add_machine_options(run)
    run.add_argument("--qmp", "-qmp", default=None, type=option_type(parse_qmp),
                     help="serve QMP on unix:PATH or tcp:127.0.0.1:PORT "
                          "(QEMU's ,server=on,wait=off accepted)")
    run.add_argument("--qmp-allow-remote", action="store_true",
                     help="let --qmp tcp: bind a non-loopback address")
    run.add_argument("--qtest", default=None,
                     help="null backend: serve the guest-side test protocol on unix:PATH")
    run.add_argument("--on-crash", choices=("poweroff", "pause"), default="poweroff",
                     help="when a vCPU fault leaves no CPU running (GUEST_PANICKED): exit with "
                          "status 1 (poweroff) or keep the machine paused for the "
                          "monitor/QMP (pause, like QEMU's -no-shutdown)")
    run.add_argument("--monitor", "-monitor", choices=("stdio", "none"), default="stdio",
                     help="monitor on stdin, or none (run until the guest powers off, "
                          "QMP quit or a signal)")
    run.set_defaults(func=cmd_run)


def event_printer(write_line: Callable[[str], None]) -> EventPrinter:
    """A listener printing guest console lines (``guest| ``) and notable events (``event ``)."""
    def on_event(event: ev.MachineEvent) -> None:
        if event.name == ev.CONSOLE:
            write_line(f"guest| {event.data['line']}")
        elif event.name in _PRINTED_EVENTS:
            data = ", ".join(f"{k}={v}" for k, v in event.data.items() if v is not None)
            write_line(f"event {event.name} {data}")
    return on_event


class _Ending:
    """Why the command ends: the first of quit, guest power-off or crash (``--on-crash
    poweroff``), QMP quit, or a signal."""

    def __init__(self, on_crash: str = "poweroff") -> None:
        self._event = threading.Event()
        self._on_crash = on_crash
        self.reason = ""
        self.signal: int | None = None
        self.panicked = False

    def finish(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signum
        self.finish(f"signal {signum}")

    def on_event(self, event: ev.MachineEvent) -> None:
        if event.name == ev.SHUTDOWN:
            self.finish("guest powered off")
        elif event.name == ev.GUEST_PANICKED and self._on_crash == "poweroff":
            self.panicked = True
            self.finish("guest panicked")

    def wait(self) -> None:
        self._event.wait()

    @property
    def done(self) -> bool:
        return self._event.is_set()


def cmd_run(args: argparse.Namespace, plugins: PluginManager) -> int:
    """Run the machine until quit, guest power-off, QMP quit or a signal; the exit status."""
    ending = _Ending(args.on_crash)
    previous = {sig: signal.signal(sig, ending.on_signal) for sig in _SIGNALS}
    line_input = LineInput(sys.stdin, Monitor.completions()) if args.monitor == "stdio" \
        else None
    redraw = line_input.redraw_text if line_input is not None and line_input.interactive \
        else None
    out = OutputWriter(sys.stdout, redraw=redraw)
    servers: list[Any] = []
    try:
        machine = build_machine(args, plugins)
        _warn_unexecuted_image(args, machine)
        machine.events.subscribe(event_printer(out.write_line))
        machine.events.subscribe(ending.on_event)
        out.write_line(LEGEND)
        machine.realize()
        try:
            _start_servers(args, machine, out, servers, ending)
            with cooperative_guest(machine, enabled=not args.qtest):
                if line_input is not None:
                    threading.Thread(target=_monitor_loop, args=(machine, line_input, out, ending),
                                     name="vcpuhp-monitor", daemon=True).start()
                ending.wait()
        finally:
            for server in servers:
                server.close()
            machine.shutdown()
    finally:
        out.close()
        if line_input is not None:
            line_input.restore()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if ending.signal is not None:
        print(f"vcpuhp: terminating on signal {ending.signal}", file=sys.stderr)
    if ending.panicked:
        print("vcpuhp: the guest crashed (GUEST_PANICKED); exiting with status 1 "
              "(--on-crash=pause keeps the machine)", file=sys.stderr)
        return 1
    return 0


def _warn_unexecuted_image(args: argparse.Namespace, machine: VirtMachine) -> None:
    """Say so when ``--kernel``/``--initrd`` name files a backend that runs no guest code
    will never load (``null``: the autopilot or a qtest client plays the guest)."""
    given = [option for option, value in (("--kernel", args.kernel), ("--initrd", args.initrd))
             if value is not None]
    if given and not machine.backend.capabilities.executes_guest_code:
        print(f"vcpuhp: warning: {' and '.join(given)} not loaded: backend "
              f"{machine.backend.name!r} executes no guest code; use an executing backend "
              "(--accel tcg-unicorn or kvm) to boot it", file=sys.stderr)


def _start_servers(args: argparse.Namespace, machine: VirtMachine, out: OutputWriter,
                   servers: list[Any], ending: _Ending) -> None:
    if args.qmp:
        from vcpuhp.qmp import QmpServer

        qmp = QmpServer(machine, args.qmp, allow_remote=args.qmp_allow_remote)
        qmp.start()
        servers.append(qmp)
        threading.Thread(target=lambda: ending.finish(f"QMP {qmp.serve_forever()}"),
                         name="vcpuhp-qmp-wait", daemon=True).start()
        out.write_line(f"QMP listening on {args.qmp}")
    if args.qtest:
        from vcpuhp_null.protocol import ProtocolServer

        qtest = ProtocolServer(machine, args.qtest)
        qtest.start()
        servers.append(qtest)
        out.write_line(f"test protocol listening on {args.qtest}")


def _monitor_loop(machine: VirtMachine, line_input: LineInput, out: OutputWriter,
                  ending: _Ending) -> None:
    """Read and run monitor commands until ``quit`` or end of input (which ends only this)."""
    monitor = Monitor(machine)
    out.write_line(f"vcpuhp monitor ({machine.backend.name}, -smp {machine.config.smp}); "
                   "type 'help'")
    while not ending.done:
        line = line_input.read()
        if line is None:
            print("vcpuhp: end of monitor input; the machine runs on until the guest "
                  "powers off, QMP quit or a signal", file=sys.stderr)
            return
        try:
            answer = monitor.execute(line)
        except MonitorQuit:
            ending.finish("quit")
            return
        if answer:
            out.write_line(answer)


__all__ = ["LEGEND", "add_subcommand", "cmd_run", "event_printer"]
