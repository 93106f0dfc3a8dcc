"""``even-cores``: the author's guide example plugin -- a policy hook and an observer hook.

Policy: ``device_add`` may plug a CPU only into a slot whose ``core-id`` is
even (or odd, with ``parity=odd``). Observer: it counts the CPUs plugged and
unplugged on its machine.

The entry point names the class, so vcpuhp makes one object per machine and
hands it that machine's options (``--plugin even-cores,parity=odd``, a
``[plugin.even-cores]`` table in the machine file, or
``PluginSettings(enable={"even-cores": {"parity": "odd"}})``). The class's
``name`` equals the entry-point name, and ``options`` lists what it takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from vcpuhp import hookimpl
from vcpuhp.errors import ConfigError
from vcpuhp.machine import VirtMachine
from vcpuhp.topology import CpuSlot
from vcpuhp.vcpu import Vcpu

PARITIES = {"even": 0, "odd": 1}


class EvenCores:
    """Refuse hot-plugs into cores of the wrong parity; count plugs and unplugs."""

    name: ClassVar[str] = "even-cores"
    options: ClassVar[Mapping[str, str]] = {
        "parity": "which core-ids may be hot-plugged: even (default) or odd",
    }

    def __init__(self, options: Mapping[str, str]) -> None:
        """Check the options; a bad one stops the machine, naming this plugin."""
        parity = options.get("parity", "even")
        if parity not in PARITIES:
            raise ConfigError(f"even-cores: parity={parity!r}; valid: even, odd")
        self.parity = parity
        self.plugged = 0
        self.unplugged = 0

    @hookimpl
    def vcpuhp_device_add_allowed(self, machine: VirtMachine, slot: CpuSlot, driver: str,
                                  device_id: str) -> str | None:
        """A policy hook: ``None`` allows, a string refuses with that reason."""
        core = slot.props().get("core-id", slot.index)
        if core % 2 != PARITIES[self.parity]:
            return f"even-cores: core-id {core} is not {self.parity}"
        return None

    @hookimpl
    def vcpuhp_cpu_plugged(self, machine: VirtMachine, vcpu: Vcpu) -> None:
        """An observer hook: runs with the machine lock held, so it only counts."""
        self.plugged += 1

    @hookimpl
    def vcpuhp_cpu_unplugged(self, machine: VirtMachine, vcpu: Vcpu,
                             device_id: str | None) -> None:
        """Count a finished unplug."""
        self.unplugged += 1


__all__ = ["EvenCores"]
