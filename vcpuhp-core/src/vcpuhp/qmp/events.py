"""Which machine events QMP clients see, and in what shape.

Only events QEMU also has are forwarded, with exactly the data members
QEMU's schema gives them (``qapi/qdev.json``, ``qapi/acpi.json``,
``qapi/run-state.json``); absent optional members are left out. vcpuhp's own
events (``CPU_PLUGGED``, ``INTERRUPT``, ``CONSOLE`` ...) stay on the
machine's :class:`~vcpuhp.events.EventBus`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from vcpuhp import events as ev
from vcpuhp.events import MachineEvent
from vcpuhp.qmp import wire
from vcpuhp.qmp.schema import EventSpec, Member

#: Every event a QMP client may receive, with its data members (QEMU's schema).
EVENTS: Final[Mapping[str, EventSpec]] = {spec.name: spec for spec in (
    EventSpec(ev.DEVICE_DELETED, (Member("device", "str", optional=True),
                                  Member("path", "str"))),
    EventSpec(ev.DEVICE_UNPLUG_GUEST_ERROR, (Member("device", "str", optional=True),
                                             Member("path", "str"))),
    EventSpec(ev.ACPI_DEVICE_OST, (Member("info", "ACPIOSTInfo"),)),
    EventSpec(ev.SHUTDOWN, (Member("guest", "bool"), Member("reason", "ShutdownCause"))),
    EventSpec(ev.RESET, (Member("guest", "bool"), Member("reason", "ShutdownCause"))),
    EventSpec(ev.GUEST_PANICKED, (Member("action", "GuestPanicAction"),
                                  Member("info", "GuestPanicInformation", optional=True))),
    EventSpec(ev.STOP),
    EventSpec(ev.RESUME),
    EventSpec("POWERDOWN"),
)}

#: Forwarded machine event names and the data members each carries.
FORWARDED: Final[Mapping[str, tuple[str, ...]]] = {
    name: tuple(member.name for member in spec.data) for name, spec in EVENTS.items()
}


def to_qmp(event: MachineEvent) -> wire.Message | None:
    """The QMP event message for ``event``, or ``None`` when QMP clients don't see it."""
    members = FORWARDED.get(event.name)
    if members is None:
        return None
    data = {name: event.data[name] for name in members if name in event.data}
    return wire.event(event.name, data, event.timestamp)
