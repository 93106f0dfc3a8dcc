"""The QMP commands: the one description checking, ``query-commands`` and
``query-qmp-schema`` are all made from.

A :class:`Command` declares its arguments and result in QAPI types
(:data:`SCHEMA`) and has a handler that runs in a worker thread with the
checked arguments, a thin call on the :class:`~vcpuhp.machine.VirtMachine`
API. The commands that act on the connection or the server rather than the
machine (``qmp_capabilities``, ``query-commands``, ``query-qmp-schema``,
``quit``) have no handler here; the session runs them.

Types and commands follow QEMU 9.2's schema (``qapi/machine.json``,
``qapi/qdev.json``, ``qapi/qom.json``, ``qapi/misc.json``, ``qapi/acpi.json``,
``qapi/run-state.json``, ``qapi/introspect.json``) for the members vcpuhp
has; vcpuhp's own commands and members start with ``x-`` or are marked so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from vcpuhp import qom
from vcpuhp.config import CPU_MODELS, cpu_qom_type
from vcpuhp.errors import DeviceError, DeviceNotFound
from vcpuhp.machine import RunState, VirtMachine
from vcpuhp.monitor import Monitor, MonitorQuit
from vcpuhp.qmp.events import EVENTS
from vcpuhp.qmp.schema import CommandSpec, Enum, Member, Schema, Struct, qemu_integer
from vcpuhp.qmp.wire import DEVICE_NOT_FOUND, QmpError, version_info
from vcpuhp.topology import MAX_CPUS

Arguments = dict[str, Any]
MachineHandler = Callable[[VirtMachine, Arguments], object]

#: The device properties that place a CPU in its slot (QAPI ``CpuInstanceProperties``).
CPU_SLOT_PROPERTIES: Final = ("socket-id", "cluster-id", "core-id", "thread-id")

SCHEMA: Final = Schema()
SCHEMA.add(
    Enum("QMPCapability", ("oob",)),
    Struct("CommandInfo", (Member("name", "str"),)),
    Enum("SchemaMetaType", ("builtin", "enum", "array", "object", "alternate", "command",
                            "event")),
    Struct("SchemaInfo", (Member("name", "str"), Member("meta-type", "SchemaMetaType"))),
    Struct("VersionTriple", (Member("major", "int"), Member("minor", "int"),
                             Member("micro", "int"))),
    Struct("VersionInfo", (Member("qemu", "VersionTriple"), Member("package", "str"))),
    Enum("RunState", tuple(state.value for state in RunState)),
    Struct("StatusInfo", (Member("running", "bool"), Member("status", "RunState"))),
    Struct("NameInfo", (Member("name", "str", optional=True),)),
    Struct("CpuInstanceProperties",
           tuple(Member(name, "int", optional=True) for name in CPU_SLOT_PROPERTIES)),
    Struct("HotpluggableCPU", (Member("type", "str"), Member("vcpus-count", "int"),
                               Member("props", "CpuInstanceProperties"),
                               Member("qom-path", "str", optional=True))),
    Struct("CpuInfoFast", (Member("cpu-index", "int"), Member("qom-path", "str"),
                           Member("thread-id", "int"),
                           Member("props", "CpuInstanceProperties", optional=True),
                           Member("target", "str"),
                           Member("arch-id", "int"), Member("state", "str"))),
    Struct("CpuMasks", tuple(Member(n, "str") for n in ("possible", "present", "enabled",
                                                         "online"))),
    Struct("CpuDefinitionInfo", (Member("name", "str"), Member("static", "bool"),
                                 Member("typename", "str"), Member("deprecated", "bool"))),
    Struct("MachineInfo", (Member("name", "str"), Member("is-default", "bool", optional=True),
                           Member("cpu-max", "int"), Member("hotpluggable-cpus", "bool"),
                           Member("numa-mem-supported", "bool"), Member("deprecated", "bool"),
                           Member("default-cpu-type", "str", optional=True),
                           Member("default-ram-id", "str", optional=True),
                           Member("acpi", "bool"))),
    Enum("ACPISlotType", ("DIMM", "CPU")),
    Struct("ACPIOSTInfo", (Member("device", "str", optional=True), Member("slot", "str"),
                           Member("slot-type", "ACPISlotType"), Member("source", "int"),
                           Member("status", "int"))),
    Enum("ShutdownCause", ("none", "host-error", "host-qmp-quit", "host-qmp-system-reset",
                           "host-signal", "host-ui", "guest-shutdown", "guest-reset",
                           "guest-panic", "subsystem-reset", "snapshot-load")),
    Enum("GuestPanicAction", ("pause", "poweroff", "run")),
    Struct("GuestPanicInformation", (Member("type", "str"),
                                     Member("cpu-index", "int", optional=True),
                                     Member("message", "str", optional=True))),
    Struct("ObjectPropertyInfo", (Member("name", "str"), Member("type", "str"),
                                  Member("description", "str", optional=True),
                                  Member("default-value", "any", optional=True))),
)


@dataclass(frozen=True)
class Command(CommandSpec):
    """One QMP command: its description plus what runs it."""

    handler: MachineHandler | None = None
    """Runs in a worker thread; ``None`` for commands the session runs itself."""
    emits: tuple[str, ...] = ()
    """Events the server sends after success because QEMU does and the machine does not."""


@dataclass(frozen=True)
class QuitAfterReply:
    """A result after which the server quits (HMP ``quit`` through ``human-monitor-command``)."""

    result: object


def _device_add(machine: VirtMachine, args: Arguments) -> object:
    properties = {k: v for k, v in args.items() if k not in ("driver", "id")}
    for name in CPU_SLOT_PROPERTIES:
        if name in properties:
            properties[name] = qemu_integer(name, properties[name])
    machine.device_add(args["driver"], args.get("id"), **properties)
    return {}


def _device_del(machine: VirtMachine, args: Arguments) -> object:
    machine.device_del(args["id"], timeout=args.get("x-timeout"))
    return {}


def _human_monitor_command(machine: VirtMachine, args: Arguments) -> object:
    """Run one HMP line on the same monitor as ``vcpuhp run``; its output, QEMU-style
    (``\\r\\n`` line ends)."""
    cpu = args.get("cpu-index")
    if cpu is not None and not (0 <= cpu < len(machine.vcpus) and machine.vcpus[cpu].enabled):
        raise QmpError("Parameter 'cpu-index' expects a CPU number")
    try:
        text = Monitor(machine).execute(args["command-line"])
    except MonitorQuit:
        return QuitAfterReply("")
    return "".join(f"{line}\r\n" for line in text.split("\n")) if text else ""


def _qom(path_arg: str, use: Callable[[qom.QomObject, Arguments], object]) -> MachineHandler:
    def handler(machine: VirtMachine, args: Arguments) -> object:
        with machine.lock:
            try:
                return use(qom.resolve(qom.build_tree(machine), args[path_arg]), args)
            except DeviceNotFound as exc:
                raise QmpError(str(exc), DEVICE_NOT_FOUND) from None
    return handler


def _device_list_properties(machine: VirtMachine, args: Arguments) -> object:
    typename = args["typename"]
    if typename not in {cpu_qom_type(model) for model in CPU_MODELS}:
        raise QmpError(f"Device '{typename}' not found", DEVICE_NOT_FOUND)
    return [{"name": name, "type": kind, "description": text}
            for name, kind, text in qom.CPU_PROPERTIES]


def _cpu_definitions(machine: VirtMachine, args: Arguments) -> object:
    return [{"name": model, "typename": cpu_qom_type(model), "static": False,
             "deprecated": False} for model in CPU_MODELS]


def _machines(machine: VirtMachine, args: Arguments) -> object:
    return [{"name": "virt", "cpu-max": MAX_CPUS, "hotpluggable-cpus": True,
             "numa-mem-supported": False, "deprecated": False, "acpi": True,
             "default-cpu-type": machine.config.cpu_type, "default-ram-id": "mach-virt.ram"}]


def _query_name(machine: VirtMachine, args: Arguments) -> object:
    name = machine.config.name
    return {} if name is None else {"name": name}


def _returns_empty(method: str) -> MachineHandler:
    """A handler calling ``machine.<method>()`` and returning ``{}``."""

    def handler(machine: VirtMachine, args: Arguments) -> object:
        getattr(machine, method)()
        return {}

    return handler


def _cancel_unplug(machine: VirtMachine, args: Arguments) -> object:
    try:
        machine.cancel_unplug(args["id"])
    except DeviceNotFound:
        raise
    except DeviceError as exc:
        raise QmpError(str(exc)) from None
    return {}


_TABLE: Final = (
    Command("qmp_capabilities", (Member("enable", "[QMPCapability]", optional=True),)),
    Command("query-commands", returns="[CommandInfo]"),
    Command("query-qmp-schema", returns="[SchemaInfo]"),
    Command("quit"),
    Command("query-version", returns="VersionInfo",
            handler=lambda machine, args: version_info()),
    Command("query-status", returns="StatusInfo",
            handler=lambda machine, args: machine.query_status()),
    Command("query-name", returns="NameInfo", handler=_query_name),
    Command("query-machines", (Member("compat-props", "bool", optional=True),),
            returns="[MachineInfo]", handler=_machines),
    Command("query-cpu-definitions", returns="[CpuDefinitionInfo]", handler=_cpu_definitions),
    Command("query-hotpluggable-cpus", returns="[HotpluggableCPU]",
            handler=lambda machine, args: machine.query_hotpluggable_cpus()),
    Command("query-cpus-fast", returns="[CpuInfoFast]",
            handler=lambda machine, args: machine.query_cpus_fast()),
    Command("query-acpi-ospm-status", returns="[ACPIOSTInfo]",
            handler=lambda machine, args: machine.query_acpi_ospm_status()),
    Command("x-query-cpu-masks", returns="CpuMasks",
            handler=lambda machine, args: machine.cpu_masks().as_lists()),
    Command("qom-list", (Member("path", "str"),), returns="[ObjectPropertyInfo]",
            handler=_qom("path", lambda obj, args: obj.list_properties())),
    Command("qom-get", (Member("path", "str"), Member("property", "str")), returns="any",
            handler=_qom("path", lambda obj, args: obj.get(args["property"]))),
    Command("device-list-properties", (Member("typename", "str"),),
            returns="[ObjectPropertyInfo]", handler=_device_list_properties),
    Command("human-monitor-command", (Member("command-line", "str"),
                                      Member("cpu-index", "int", optional=True)),
            returns="str", handler=_human_monitor_command),
    Command("device_add", (Member("driver", "str"), Member("id", "str", optional=True)),
            handler=_device_add, open_ended=True),
    Command("device_del", (Member("id", "str"), Member("x-timeout", "number", optional=True)),
            handler=_device_del),
    Command("x-device-unplug-cancel", (Member("id", "str"),), handler=_cancel_unplug),
    Command("stop", handler=_returns_empty("stop")),
    Command("cont", handler=_returns_empty("cont")),
    Command("system_powerdown", handler=_returns_empty("system_powerdown"),
            emits=("POWERDOWN",)),
)

#: Every command by name, in the order ``query-commands`` lists them.
COMMANDS: Final[Mapping[str, Command]] = {command.name: command for command in _TABLE}


def introspection() -> list[dict[str, Any]]:
    """``query-qmp-schema``: every command and event, and the types they use."""
    return SCHEMA.introspect(_TABLE, EVENTS.values())
