"""vcpuhp plugin: an audit log of hotplug activity and an enabled-CPU quota.

Configured per machine, like every vcpuhp plugin (``vcpuhp plugins`` shows
what a machine would load)::

    vcpuhp run --plugin audit-log,path=/var/log/vcpuhp.jsonl,quota=6

    # or in the machine file (vcpuhp run --config machine.toml)
    [plugin.audit-log]
    path = "/var/log/vcpuhp.jsonl"
    quota = 6

    # or from Python
    MachineConfig.build(..., plugins=PluginSettings(enable={"audit-log": {"path": ...}}))

Options (both off unless given, so installing the plugin changes nothing):

``path``
    append one JSON object per line for every plug, unplug, power on/off and
    ``_OST`` report (observer hooks).
``quota``
    refuse ``device_add`` when this many CPUs are already enabled (policy hook).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Final

from vcpuhp import hookimpl
from vcpuhp.errors import ConfigError
from vcpuhp.machine import VirtMachine
from vcpuhp.topology import CpuSlot
from vcpuhp.vcpu import Vcpu

OPTIONS: Final = {
    "path": "append a JSON line per hotplug, power and _OST event to this file",
    "quota": "refuse device_add once this many CPUs are enabled",
}


class AuditLog:
    """One machine's audit log and quota (the plugin object; one per machine)."""

    name: ClassVar[str] = "audit-log"
    options: ClassVar[Mapping[str, str]] = OPTIONS

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        """Take the ``path`` and ``quota`` options; :class:`ConfigError` if one is invalid."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ConfigError(f"audit-log: unknown option(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(OPTIONS)}")
        self.path = Path(options["path"]) if options.get("path") else None
        self.quota = _quota(options.get("quota", ""))
        self._lock = threading.Lock()

    def _log(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        line = json.dumps({"time": time.time(), **record}, sort_keys=True)
        with self._lock, self.path.open("a", encoding="utf-8") as stream:
            stream.write(line + "\n")

    @hookimpl
    def vcpuhp_device_add_allowed(self, machine: VirtMachine, slot: CpuSlot, driver: str,
                                  device_id: str) -> str | None:
        """Refuse a plug beyond ``quota`` enabled CPUs."""
        if self.quota is None:
            return None
        enabled = len(machine.cpu_masks().enabled)
        if enabled >= self.quota:
            return (f"CPU quota reached: {enabled} of {self.quota} CPUs enabled "
                    "(audit-log option quota)")
        return None

    @hookimpl
    def vcpuhp_cpu_plugged(self, machine: VirtMachine, vcpu: Vcpu) -> None:
        """Log a plug."""
        self._log(_vcpu_record("plugged", vcpu))

    @hookimpl
    def vcpuhp_cpu_unplugged(self, machine: VirtMachine, vcpu: Vcpu,
                             device_id: str | None) -> None:
        """Log an unplug (eject completed)."""
        self._log(_vcpu_record("unplugged", vcpu, device_id))

    @hookimpl
    def vcpuhp_cpu_powered_on(self, machine: VirtMachine, vcpu: Vcpu) -> None:
        """Log a CPU starting."""
        self._log(_vcpu_record("powered-on", vcpu))

    @hookimpl
    def vcpuhp_cpu_powered_off(self, machine: VirtMachine, vcpu: Vcpu) -> None:
        """Log a CPU stopping."""
        self._log(_vcpu_record("powered-off", vcpu))

    @hookimpl
    def vcpuhp_acpi_ost(self, machine: VirtMachine, vcpu: Vcpu, event: int,
                        status: int) -> None:
        """Log an ``_OST`` report."""
        self._log({**_vcpu_record("ost", vcpu), "source": event, "status": status})


def _quota(raw: str) -> int | None:
    if raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"audit-log: quota={raw!r} is not a whole number") from None
    if value < 1:
        raise ConfigError(f"audit-log: quota={value} must be at least 1")
    return value


def _vcpu_record(event: str, vcpu: Vcpu, device_id: str | None = None) -> dict[str, Any]:
    return {"event": event, "cpu": vcpu.slot.index, "arch_id": vcpu.slot.arch_id,
            "device": device_id if device_id is not None else vcpu.device_id}


__all__ = ["OPTIONS", "AuditLog"]
