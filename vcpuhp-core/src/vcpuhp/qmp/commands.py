"""The QMP commands: each a thin call on the :class:`~vcpuhp.machine.VirtMachine` API.

A :class:`Command` declares its arguments (checked before it runs) and a
handler that runs in a worker thread with the checked arguments. The three
commands that act on the connection or the server rather than the machine
(``qmp_capabilities``, ``query-commands``, ``quit``) have no handler here;
the session runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from vcpuhp.machine import VirtMachine
from vcpuhp.qmp.schema import Param, check_type
from vcpuhp.qmp.wire import version_info

Arguments = dict[str, Any]
MachineHandler = Callable[[VirtMachine, Arguments], object]

#: The device properties that place a CPU in its slot (QAPI ``CpuInstanceProperties``).
CPU_SLOT_PROPERTIES: Final = ("socket-id", "cluster-id", "core-id", "thread-id")


@dataclass(frozen=True)
class Command:
    """One QMP command."""

    name: str
    params: tuple[Param, ...] = ()
    handler: MachineHandler | None = None
    """Runs in a worker thread; ``None`` for commands the session runs itself."""
    open_ended: bool = False
    """Takes members beyond ``params`` (``device_add``'s properties), checked by the handler."""
    emits: tuple[str, ...] = ()
    """Events the server sends after success because QEMU does and the machine does not."""


def _device_add(machine: VirtMachine, args: Arguments) -> object:
    properties = {k: v for k, v in args.items() if k not in ("driver", "id")}
    for name in CPU_SLOT_PROPERTIES:
        if name in properties:
            check_type(name, properties[name], "int")
    machine.device_add(args["driver"], args.get("id"), **properties)
    return {}


def _device_del(machine: VirtMachine, args: Arguments) -> object:
    machine.device_del(args["id"])
    return {}


def _returns_empty(method: str) -> MachineHandler:
    """A handler calling ``machine.<method>()`` and returning ``{}``."""

    def handler(machine: VirtMachine, args: Arguments) -> object:
        getattr(machine, method)()
        return {}

    return handler


_TABLE: Final = (
    Command("qmp_capabilities", (Param("enable", "array", optional=True),)),
    Command("query-commands"),
    Command("quit"),
    Command("query-version", handler=lambda machine, args: version_info()),
    Command("query-status", handler=lambda machine, args: machine.query_status()),
    Command("query-hotpluggable-cpus",
            handler=lambda machine, args: machine.query_hotpluggable_cpus()),
    Command("query-cpus-fast", handler=lambda machine, args: machine.query_cpus_fast()),
    Command("query-acpi-ospm-status",
            handler=lambda machine, args: machine.query_acpi_ospm_status()),
    Command("x-query-cpu-masks", handler=lambda machine, args: machine.cpu_masks().as_lists()),
    Command("device_add", (Param("driver", "str"), Param("id", "str", optional=True)),
            handler=_device_add, open_ended=True),
    Command("device_del", (Param("id", "str"),), handler=_device_del),
    Command("stop", handler=_returns_empty("stop")),
    Command("cont", handler=_returns_empty("cont")),
    Command("system_powerdown", handler=_returns_empty("system_powerdown"),
            emits=("POWERDOWN",)),
)

#: Every command by name, in the order ``query-commands`` lists them.
COMMANDS: Final[Mapping[str, Command]] = {command.name: command for command in _TABLE}
