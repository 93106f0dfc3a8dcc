"""vcpuhp plugin: an audit log of hotplug activity and an enabled-CPU quota.

Both are off unless configured through the environment, so installing the
plugin changes nothing by itself:

``VCPUHP_AUDIT_LOG=PATH``
    append one JSON object per line for every plug, unplug, power on/off and
    ``_OST`` report (observer hooks).
``VCPUHP_CPU_QUOTA=N``
    refuse ``device_add`` when N CPUs are already enabled (policy hook).
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from vcpuhp import hookimpl
from vcpuhp.machine import VirtMachine
from vcpuhp.topology import CpuSlot
from vcpuhp.vcpu import Vcpu

_write_lock = threading.Lock()


def _log(record: dict[str, Any]) -> None:
    path = os.environ.get("VCPUHP_AUDIT_LOG")
    if not path:
        return
    line = json.dumps({"time": time.time(), **record}, sort_keys=True)
    with _write_lock, open(path, "a", encoding="utf-8") as stream:
        stream.write(line + "\n")


def quota() -> int | None:
    """The configured enabled-CPU quota, or ``None``."""
    raw = os.environ.get("VCPUHP_CPU_QUOTA")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"VCPUHP_CPU_QUOTA={raw!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"VCPUHP_CPU_QUOTA={value} must be at least 1")
    return value


@hookimpl
def vcpuhp_device_add_allowed(machine: VirtMachine, slot: CpuSlot, driver: str,
                              device_id: str) -> str | None:
    """Refuse a plug beyond ``VCPUHP_CPU_QUOTA`` enabled CPUs."""
    limit = quota()
    if limit is None:
        return None
    enabled = len(machine.cpu_masks().enabled)
    if enabled >= limit:
        return f"CPU quota reached: {enabled} of {limit} CPUs enabled (VCPUHP_CPU_QUOTA)"
    return None


def _vcpu_record(event: str, vcpu: Vcpu, device_id: str | None = None) -> dict[str, Any]:
    return {"event": event, "cpu": vcpu.slot.index, "arch_id": vcpu.slot.arch_id,
            "device": device_id if device_id is not None else vcpu.device_id}


@hookimpl
def vcpuhp_cpu_plugged(machine: VirtMachine, vcpu: Vcpu) -> None:
    """Log a plug."""
    _log(_vcpu_record("plugged", vcpu))


@hookimpl
def vcpuhp_cpu_unplugged(machine: VirtMachine, vcpu: Vcpu, device_id: str | None) -> None:
    """Log an unplug (eject completed)."""
    _log(_vcpu_record("unplugged", vcpu, device_id))


@hookimpl
def vcpuhp_cpu_powered_on(machine: VirtMachine, vcpu: Vcpu) -> None:
    """Log a CPU starting."""
    _log(_vcpu_record("powered-on", vcpu))


@hookimpl
def vcpuhp_cpu_powered_off(machine: VirtMachine, vcpu: Vcpu) -> None:
    """Log a CPU stopping."""
    _log(_vcpu_record("powered-off", vcpu))


@hookimpl
def vcpuhp_acpi_ost(machine: VirtMachine, vcpu: Vcpu, event: int, status: int) -> None:
    """Log an ``_OST`` report."""
    _log({**_vcpu_record("ost", vcpu), "source": event, "status": status})
