"""QMP-shaped views of a machine's state (QEMU ``qapi/machine.json``, ``qapi/acpi.json``).

Pure functions of the machine's records, called by
:class:`~vcpuhp.machine.VirtMachine`'s query methods with the machine lock
held. They only read; the shapes are QEMU's, so QEMU tooling can consume them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from vcpuhp.masks import CpuMasks
from vcpuhp.vcpu import Vcpu

if TYPE_CHECKING:
    from vcpuhp.machine import VirtMachine


def cpu_masks(vcpus: tuple[Vcpu, ...]) -> CpuMasks:
    """possible / present / enabled / online, as the guest's sysfs would show them."""
    possible = frozenset(v.slot.index for v in vcpus)
    return CpuMasks(
        possible,
        possible,
        frozenset(v.slot.index for v in vcpus if v.enabled),
        frozenset(v.slot.index for v in vcpus if v.online),
    )


def hotpluggable_cpus(machine: VirtMachine) -> list[dict[str, Any]]:
    """``query-hotpluggable-cpus``: every slot, highest index first, ``qom-path`` only
    when plugged."""
    rows = []
    for vcpu in reversed(machine.vcpus):
        row: dict[str, Any] = {
            "type": machine.config.cpu_type,
            "vcpus-count": 1,
            "props": vcpu.slot.props(),
        }
        if vcpu.enabled:
            row["qom-path"] = vcpu.qom_path
        rows.append(row)
    return rows


def cpus_fast(machine: VirtMachine) -> list[dict[str, Any]]:
    """``query-cpus-fast``: the enabled CPUs (plus vcpuhp's ``arch-id`` and ``state``)."""
    return [
        {
            "cpu-index": v.slot.index,
            "qom-path": v.qom_path,
            "thread-id": _thread_id(v),
            "props": v.slot.props(),
            "target": "aarch64",
            "arch-id": v.slot.arch_id,
            "state": v.state.value,
        }
        for v in machine.vcpus if v.enabled
    ]


def _thread_id(vcpu: Vcpu) -> int:
    """The host thread that runs ``vcpu``; without one, the calling thread."""
    native = getattr(vcpu.handle, "thread_id", None)
    return int(native) if native is not None else threading.get_native_id()


def acpi_ospm_status(machine: VirtMachine) -> list[dict[str, Any]]:
    """``query-acpi-ospm-status``: the last ``_OST`` of every CPU slot (as QEMU)."""
    return [
        {"device": v.device_id, "slot": str(v.slot.index), "slot-type": "CPU",
         "source": v.ost_event, "status": v.ost_status}
        for v in machine.vcpus
    ]


__all__ = ["acpi_ospm_status", "cpu_masks", "cpus_fast", "hotpluggable_cpus"]
