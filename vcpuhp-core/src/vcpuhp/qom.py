"""A QOM-like tree of a machine, for QMP ``qom-list`` / ``qom-get``.

The tree is built from the machine's state each time it is asked for, so it
always agrees with the other queries. Its shape is QEMU's for the parts a
``virt`` machine with hot-pluggable CPUs has::

    /                               container
    /machine                        the board (virt-machine)
    /machine/peripheral             CPUs plugged with an id: /machine/peripheral/<id>
    /machine/peripheral-anon        (empty: every hot-plugged CPU has an id)
    /machine/unattached             CPUs enabled at boot: /machine/unattached/device[N]

Paths are those :attr:`~vcpuhp.vcpu.Vcpu.qom_path` gives, and that
``query-hotpluggable-cpus`` and ``query-cpus-fast`` report. Like QEMU a path
that does not start with ``/`` is a *partial* path: it names the one object
whose path ends with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from vcpuhp.errors import DeviceError, DeviceNotFound
from vcpuhp.topology import MAX_CPUS

if TYPE_CHECKING:
    from vcpuhp.machine import VirtMachine
    from vcpuhp.vcpu import Vcpu

MACHINE_TYPE: Final = "virt-machine"
CONTAINER: Final = "container"


@dataclass(frozen=True)
class Property:
    """One property of an object: QOM type name, value, and what it means."""

    name: str
    type: str
    value: Any
    description: str = ""


@dataclass
class QomObject:
    """An object of the tree: its QOM type, properties and children."""

    path: str
    type: str
    properties: list[Property] = field(default_factory=list)
    children: dict[str, QomObject] = field(default_factory=dict)

    def child(self, name: str, obj: QomObject) -> None:
        """Add ``obj`` as child ``name`` (a ``child<type>`` property)."""
        self.children[name] = obj

    def list_properties(self) -> list[dict[str, str]]:
        """``qom-list``: ``type`` first, then properties, then children."""
        rows = [{"name": "type", "type": "string"}]
        rows += [{"name": p.name, "type": p.type} for p in self.properties]
        rows += [{"name": n, "type": f"child<{c.type}>"} for n, c in self.children.items()]
        return rows

    def get(self, name: str) -> Any:
        """``qom-get``: a property's value; a child's value is its path."""
        if name == "type":
            return self.type
        for prop in self.properties:
            if prop.name == name:
                return prop.value
        if name in self.children:
            return self.children[name].path
        raise DeviceError(f"Property '{self.type}.{name}' not found")


#: The properties of a CPU device: name, QOM type, what it means.
CPU_PROPERTIES: Final = (
    ("socket-id", "int32", "socket the CPU is in"),
    ("cluster-id", "int32", "cluster the CPU is in"),
    ("core-id", "int32", "core number of the CPU"),
    ("thread-id", "int32", "thread number of the CPU"),
    ("mp-affinity", "uint64", "MPIDR affinity (arch id)"),
    ("start-powered-off", "bool", "waits for PSCI CPU_ON after reset"),
    ("realized", "bool", "the CPU exists (is plugged)"),
    ("hotplugged", "bool", "plugged after boot"),
    ("hotpluggable", "bool", "may be unplugged with device_del"),
)


def cpu_object(machine: VirtMachine, vcpu: Vcpu) -> QomObject:
    """The QOM object of a plugged CPU."""
    slot = vcpu.slot
    values = {
        "socket-id": slot.socket_id, "cluster-id": slot.cluster_id, "core-id": slot.core_id,
        "thread-id": slot.thread_id, "mp-affinity": slot.arch_id,
        "start-powered-off": slot.index != 0, "realized": vcpu.enabled,
        "hotplugged": not vcpu.cold_booted,
        "hotpluggable": slot.index != 0 and (not vcpu.cold_booted
                                            or machine.config.allow_cold_unplug),
    }
    props = [Property(name, kind, values[name], text) for name, kind, text in CPU_PROPERTIES]
    return QomObject(vcpu.qom_path, machine.config.cpu_type, props)


def build_tree(machine: VirtMachine) -> QomObject:
    """The whole tree, from the machine's current state (call with the machine lock held)."""
    root = QomObject("/", CONTAINER)
    smp = machine.config.smp
    board = QomObject("/machine", MACHINE_TYPE, [
        Property("smp", "SMPConfiguration",
                 {"cpus": smp.cpus, "maxcpus": smp.maxcpus, "sockets": smp.sockets,
                  "clusters": smp.clusters, "cores": smp.cores, "threads": smp.threads},
                 "CPU topology"),
        Property("gic-version", "string", "3", "GIC version"),
        Property("acpi", "OnOffAuto", "on", "ACPI tables for the guest"),
        Property("ram-size", "uint64", machine.config.memory_size, "RAM size in bytes"),
        Property("cpu-max", "uint32", MAX_CPUS, "most CPUs the board supports"),
        Property("accel", "string", machine.backend.name, "accelerator backend"),
    ])
    root.child("machine", board)
    peripheral = QomObject("/machine/peripheral", CONTAINER)
    unattached = QomObject("/machine/unattached", CONTAINER)
    board.child("peripheral", peripheral)
    board.child("peripheral-anon", QomObject("/machine/peripheral-anon", CONTAINER))
    board.child("unattached", unattached)
    for vcpu in machine.vcpus:
        if not vcpu.enabled:
            continue
        parent = peripheral if vcpu.device_id is not None else unattached
        parent.child(vcpu.qom_path.rsplit("/", 1)[1], cpu_object(machine, vcpu))
    return root


def resolve(root: QomObject, path: str) -> QomObject:
    """The object at ``path`` (absolute, or partial: a unique trailing part of one)."""
    if path.startswith("/"):
        node = root
        for part in filter(None, path.split("/")):
            if part not in node.children:
                raise DeviceNotFound(f"Device '{path}' not found")
            node = node.children[part]
        return node
    matches = [obj for obj in _walk(root) if obj.path.endswith("/" + path.strip("/"))]
    if not path.strip("/") or not matches:
        raise DeviceNotFound(f"Device '{path}' not found")
    if len(matches) > 1:
        raise DeviceError(f"Path '{path}' is ambiguous")
    return matches[0]


def _walk(node: QomObject) -> list[QomObject]:
    found = [node]
    for child in node.children.values():
        found += _walk(child)
    return found


__all__ = ["CPU_PROPERTIES", "MACHINE_TYPE", "Property", "QomObject", "build_tree",
           "cpu_object", "resolve"]
