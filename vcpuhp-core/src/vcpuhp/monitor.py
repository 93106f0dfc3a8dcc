"""The interactive monitor of ``vcpuhp run`` (a small subset of QEMU's HMP).

:class:`Monitor` turns one command line into its printed answer; the CLI
feeds it stdin. Commands::

    device_add DRIVER,id=ID[,socket-id=N][,cluster-id=N][,core-id=N][,thread-id=N]
    device_del ID
    info hotpluggable-cpus | cpus | status | backend
    stop | cont | system_powerdown | quit | help
"""

from __future__ import annotations

from typing import Any

from vcpuhp.errors import VcpuhpError
from vcpuhp.machine import VirtMachine

HELP = """\
device_add DRIVER,id=ID[,socket-id=N][,cluster-id=N][,core-id=N][,thread-id=N]
                     plug a CPU (e.g. device_add max-arm-cpu,id=core4,core-id=4)
device_del ID        ask the guest to release a plugged CPU
info hotpluggable-cpus   every CPU slot, plugged ones with their QOM path
info cpus            the CPU masks as the guest's sysfs shows them, and each CPU
info status          run state
info backend         the accelerator backend and its resource counts
stop | cont          pause / resume every vCPU
system_powerdown     ask the guest to power down
quit                 shut the machine down and exit"""


class MonitorQuit(Exception):
    """``quit`` was entered."""


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

    def execute(self, line: str) -> str:
        """The text printed for ``line`` (raises :class:`MonitorQuit` on ``quit``)."""
        words = line.split()
        if not words:
            return ""
        command, args = words[0], words[1:]
        try:
            return self._dispatch(command, args)
        except VcpuhpError as exc:
            return f"Error: {exc}"

    def _dispatch(self, command: str, args: list[str]) -> str:
        m = self.machine
        if command == "help":
            return HELP
        if command == "quit":
            raise MonitorQuit
        if command == "device_add":
            if len(args) != 1:
                return "Error: usage: device_add DRIVER,id=ID,core-id=N"
            driver, props = parse_device_options(args[0])
            device_id = props.pop("id", None)
            vcpu = m.device_add(driver, device_id, **props)
            return f"CPU {vcpu.slot.index} plugged as {vcpu.qom_path}"
        if command == "device_del":
            if len(args) != 1:
                return "Error: usage: device_del ID"
            m.device_del(args[0])
            return f"unplug of {args[0]} requested; the guest completes it"
        if command == "info" and len(args) == 1:
            return self._info(args[0])
        if command == "stop":
            m.stop()
            return ""
        if command == "cont":
            m.cont()
            return ""
        if command == "system_powerdown":
            m.system_powerdown()
            return ""
        return f"Error: unknown command {' '.join([command, *args])!r}; type 'help'"

    def _info(self, what: str) -> str:
        m = self.machine
        if what == "hotpluggable-cpus":
            lines = ["Hotpluggable CPUs:"]
            for row in m.query_hotpluggable_cpus():
                lines.append(f'  type: "{row["type"]}"')
                lines.append(f'  vcpus_count: "{row["vcpus-count"]}"')
                if "qom-path" in row:
                    lines.append(f'  qom_path: "{row["qom-path"]}"')
                lines.append("  CPUInstance Properties:")
                lines.extend(f'    {k}: "{v}"' for k, v in row["props"].items())
            return "\n".join(lines)
        if what == "cpus":
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
        if what == "status":
            return f"VM status: {m.run_state.value}"
        if what == "backend":
            stats = ", ".join(f"{k}={v}" for k, v in m.backend_stats().items())
            return f"backend {m.backend.name}: {stats}"
        return (f"Error: unknown info topic {what!r}; "
                "valid: hotpluggable-cpus, cpus, status, backend")
