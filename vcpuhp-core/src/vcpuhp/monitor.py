"""The human monitor of ``vcpuhp run`` (a small subset of QEMU's HMP).

:class:`Monitor` turns one command line into its printed answer. The CLI
feeds it stdin; QMP's ``human-monitor-command`` feeds it the same way, so
``qmp-shell -H`` drives the very same monitor. ``help`` and ``info`` (alone)
list what exists, one ``name -- what it does`` line each, as QEMU's do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from vcpuhp.errors import VcpuhpError
from vcpuhp.machine import VirtMachine


class MonitorQuit(Exception):
    """``quit`` was entered."""


@dataclass(frozen=True)
class _Entry:
    name: str
    usage: str
    help: str


COMMANDS: Final = (
    _Entry("device_add", "device_add driver,id=ID[,socket-id=N][,cluster-id=N][,core-id=N]"
                         "[,thread-id=N]",
           "plug a CPU (e.g. device_add max-arm-cpu,id=core4,core-id=4)"),
    _Entry("device_del", "device_del id", "ask the guest to release a plugged CPU"),
    _Entry("info", "info [subcommand]", "show machine state; 'info' alone lists what"),
    _Entry("stop", "stop", "pause every vCPU"),
    _Entry("cont", "cont", "resume every vCPU"),
    _Entry("system_powerdown", "system_powerdown", "ask the guest to power down"),
    _Entry("quit", "quit", "shut the machine down and exit"),
    _Entry("help", "help [command]", "list commands, or show one"),
)
INFO_TOPICS: Final = (
    _Entry("hotpluggable-cpus", "info hotpluggable-cpus",
           "every CPU slot, plugged ones with their QOM path"),
    _Entry("cpus", "info cpus", "the CPU masks as the guest's sysfs shows them, and each CPU"),
    _Entry("status", "info status", "show the current VM status (running|paused|...)"),
    _Entry("backend", "info backend", "the accelerator backend and its resource counts"),
    _Entry("version", "info version", "the QEMU version whose QMP is followed, and vcpuhp's"),
    _Entry("name", "info name", "the machine's name"),
)


def _listing(entries: tuple[_Entry, ...]) -> str:
    width = max(len(e.usage) for e in entries)
    return "\n".join(f"{e.usage:<{width}} -- {e.help}" for e in entries)


def parse_device_options(text: str) -> tuple[str, dict[str, Any]]:
    """Split ``max-arm-cpu,id=core4,core-id=4`` into driver and properties."""
    driver, *pairs = text.split(",")
    props: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise VcpuhpError(f"device_add: {pair!r} is not key=value")
        if key == "id":
            props[key] = value
            continue
        try:
            props[key] = int(value, 0)
        except ValueError:
            raise VcpuhpError(f"device_add: {key}={value!r} is not an integer") from None
    return driver, props


class Monitor:
    """Executes monitor commands against a machine."""

    def __init__(self, machine: VirtMachine) -> None:
        self.machine = machine
        self._commands: dict[str, Callable[[list[str]], str]] = {
            "help": self._help, "quit": self._quit, "device_add": self._device_add,
            "device_del": self._device_del, "info": self._info, "stop": self._stop,
            "cont": self._cont, "system_powerdown": self._system_powerdown,
        }

    @staticmethod
    def completions() -> list[str]:
        """Every command and ``info`` topic, for line-editor completion."""
        return [e.name for e in COMMANDS] + [f"info {t.name}" for t in INFO_TOPICS]

    def execute(self, line: str) -> str:
        """The text printed for ``line`` (raises :class:`MonitorQuit` on ``quit``)."""
        words = line.split()
        if not words:
            return ""
        command, args = words[0], words[1:]
        handler = self._commands.get(command)
        if handler is None:
            return f"unknown command: '{command}'; type 'help'"
        try:
            return handler(args)
        except VcpuhpError as exc:
            return f"Error: {exc}"

    def _help(self, args: list[str]) -> str:
        if not args:
            return _listing(COMMANDS)
        if args == ["info"]:
            return _listing(INFO_TOPICS)
        entry = next((e for e in COMMANDS if e.name == args[0]), None)
        if entry is None or len(args) > 1:
            return f"unknown command: '{' '.join(args)}'; type 'help'"
        return _listing((entry,))

    def _quit(self, args: list[str]) -> str:
        raise MonitorQuit

    def _device_add(self, args: list[str]) -> str:
        if len(args) != 1:
            return "Error: usage: device_add DRIVER,id=ID,core-id=N"
        driver, props = parse_device_options(args[0])
        device_id = props.pop("id", None)
        vcpu = self.machine.device_add(driver, device_id, **props)
        return f"CPU {vcpu.slot.index} plugged as {vcpu.qom_path}"

    def _device_del(self, args: list[str]) -> str:
        if len(args) != 1:
            return "Error: usage: device_del ID"
        self.machine.device_del(args[0])
        return f"unplug of {args[0]} requested; the guest completes it"

    def _stop(self, args: list[str]) -> str:
        self.machine.stop()
        return ""

    def _cont(self, args: list[str]) -> str:
        self.machine.cont()
        return ""

    def _system_powerdown(self, args: list[str]) -> str:
        self.machine.system_powerdown()
        return ""

    def _info(self, args: list[str]) -> str:
        if not args:
            return _listing(INFO_TOPICS)
        if len(args) > 1:
            return f"Error: usage: info [subcommand]; one of: {self._topics()}"
        topic = getattr(self, "_info_" + args[0].replace("-", "_"), None)
        if topic is None or args[0] not in {t.name for t in INFO_TOPICS}:
            return f"Error: unknown info topic {args[0]!r}; valid: {self._topics()}"
        result: str = topic()
        return result

    @staticmethod
    def _topics() -> str:
        return ", ".join(t.name for t in INFO_TOPICS)

    def _info_hotpluggable_cpus(self) -> str:
        lines = ["Hotpluggable CPUs:"]
        for row in self.machine.query_hotpluggable_cpus():
            lines.append(f'  type: "{row["type"]}"')
            lines.append(f'  vcpus_count: "{row["vcpus-count"]}"')
            if "qom-path" in row:
                lines.append(f'  qom_path: "{row["qom-path"]}"')
            lines.append("  CPUInstance Properties:")
            lines.extend(f'    {k}: "{v}"' for k, v in row["props"].items())
        return "\n".join(lines)

    def _info_cpus(self) -> str:
        m = self.machine
        masks = m.cpu_masks().as_lists()
        lines = [f"{name:<9}{value}" for name, value in masks.items()]
        for vcpu in m.vcpus:
            mark = "*" if vcpu.slot.index == 0 else " "
            name = f" id={vcpu.device_id}" if vcpu.device_id else ""
            lines.append(
                f"{mark} CPU #{vcpu.slot.index}: arch-id {vcpu.slot.arch_id:#x} "
                f"{vcpu.state.value}{name}"
            )
        return "\n".join(lines)

    def _info_status(self) -> str:
        return f"VM status: {self.machine.run_state.value}"

    def _info_backend(self) -> str:
        stats = ", ".join(f"{k}={v}" for k, v in self.machine.backend_stats().items())
        return f"backend {self.machine.backend.name}: {stats}"

    def _info_version(self) -> str:
        from vcpuhp.qmp.wire import PACKAGE, QEMU_VERSION

        return f"{'.'.join(map(str, QEMU_VERSION))} ({PACKAGE})"

    def _info_name(self) -> str:
        name = self.machine.config.name
        return "" if name is None else name


__all__ = ["COMMANDS", "INFO_TOPICS", "Monitor", "MonitorQuit", "parse_device_options"]
