"""The per-vCPU state machine.

A slot moves only along these edges::

    UNPLUGGED --plug--> POWERED_OFF --cpu_on--> ON_PENDING --started--> ONLINE
        ^                 |   ^                                            |
        +-----eject-------+   +------------------cpu_off-------------------+

``reset`` (a system reset) brings every enabled CPU back to ``POWERED_OFF``.
The ACPI hotplug flags (insert / remove events, firmware eject request) and
the last ``_OST`` report live beside the state; they are what the CPU hotplug
register block shows the guest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from vcpuhp.errors import StateError
from vcpuhp.topology import CpuSlot


class VcpuState(Enum):
    """Where a CPU slot is in its life cycle."""

    UNPLUGGED = "unplugged"
    """``_STA.Enabled=0``: no realized vCPU (its accelerator vCPU may be parked)."""
    POWERED_OFF = "powered-off"
    """Enabled and realized, waiting for PSCI ``CPU_ON``."""
    ON_PENDING = "on-pending"
    """``CPU_ON`` accepted; the backend has not started executing it yet."""
    ONLINE = "online"
    """Running guest code."""


_EDGES: dict[tuple[VcpuState, str], VcpuState] = {
    (VcpuState.UNPLUGGED, "plug"): VcpuState.POWERED_OFF,
    (VcpuState.POWERED_OFF, "cpu_on"): VcpuState.ON_PENDING,
    (VcpuState.ON_PENDING, "started"): VcpuState.ONLINE,
    (VcpuState.ONLINE, "cpu_off"): VcpuState.POWERED_OFF,
    (VcpuState.POWERED_OFF, "eject"): VcpuState.UNPLUGGED,
    (VcpuState.POWERED_OFF, "reset"): VcpuState.POWERED_OFF,
    (VcpuState.ON_PENDING, "reset"): VcpuState.POWERED_OFF,
    (VcpuState.ONLINE, "reset"): VcpuState.POWERED_OFF,
}


def next_state(state: VcpuState, action: str) -> VcpuState:
    """The state ``action`` leads to from ``state``; :class:`StateError` if there is no edge."""
    try:
        return _EDGES[(state, action)]
    except KeyError:
        valid = sorted(a for (s, a) in _EDGES if s is state)
        raise StateError(
            f"cannot {action} a CPU that is {state.value}; valid here: {', '.join(valid) or 'none'}"
        ) from None


@dataclass
class Vcpu:
    """The machine's record of one CPU slot."""

    slot: CpuSlot
    cold_booted: bool
    state: VcpuState = VcpuState.UNPLUGGED
    device_id: str | None = None
    """The ``id`` given to ``device_add`` (``None`` for cold-booted CPUs)."""
    insert_pending: bool = False
    remove_pending: bool = False
    unplug_requested: bool = False
    """``device_del`` asked for removal and the guest has neither ejected nor refused."""
    fw_remove: bool = False
    ost_event: int = 0
    ost_status: int = 0
    entry_point: int = 0
    context_id: int = 0
    handle: Any = field(default=None, repr=False, compare=False)
    """The backend's realized vCPU object while enabled."""

    def advance(self, action: str) -> None:
        """Move along the edge named ``action`` (raises :class:`StateError` if none)."""
        self.state = next_state(self.state, action)

    @property
    def enabled(self) -> bool:
        """``_STA.Enabled``: the CPU is plugged."""
        return self.state is not VcpuState.UNPLUGGED

    @property
    def online(self) -> bool:
        """The CPU executes guest code."""
        return self.state is VcpuState.ONLINE

    @property
    def qom_path(self) -> str:
        """The QOM path QEMU would give this CPU."""
        if self.device_id is not None:
            return f"/machine/peripheral/{self.device_id}"
        return f"/machine/unattached/device[{self.slot.index}]"

    def state_dict(self) -> dict[str, Any]:
        """Everything that defines this CPU's state, for snapshots and comparisons."""
        return {
            "index": self.slot.index,
            "state": self.state.value,
            "device_id": self.device_id,
            "insert_pending": self.insert_pending,
            "remove_pending": self.remove_pending,
            "unplug_requested": self.unplug_requested,
            "fw_remove": self.fw_remove,
            "ost_event": self.ost_event,
            "ost_status": self.ost_status,
            "entry_point": self.entry_point,
            "context_id": self.context_id,
        }
