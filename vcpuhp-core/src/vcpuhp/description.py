"""What the guest is told about a machine, as plain data.

A :class:`MachineDescription` is a pure function of a
:class:`~vcpuhp.config.MachineConfig`: the CPU topology, the RAM, the GIC
layout and the hotplug policies that shape the ACPI tables. The table and
boot-image builders take one of these instead of a running machine, so they
can be checked byte for byte without realizing anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from vcpuhp import memmap
from vcpuhp.config import MachineConfig
from vcpuhp.gic_layout import RedistributorRegion, layout_redistributors
from vcpuhp.topology import CpuSlot, Topology


@dataclass(frozen=True)
class MachineDescription:
    """The machine as the guest sees it at boot."""

    topology: Topology
    ram_base: int
    ram_size: int
    redistributor_regions: tuple[RedistributorRegion, ...]
    allow_cold_unplug: bool
    """Policy: CPUs enabled at boot may be ejected too (their ``_EJ0`` exists)."""
    cpu_type: str

    @classmethod
    def of(cls, config: MachineConfig, topology: Topology | None = None) -> MachineDescription:
        """The description of a machine built from ``config``."""
        topology = topology if topology is not None else Topology(config.smp)
        return cls(
            topology=topology,
            ram_base=memmap.RAM_BASE,
            ram_size=config.memory_size,
            redistributor_regions=layout_redistributors(config.smp.maxcpus),
            allow_cold_unplug=config.allow_cold_unplug,
            cpu_type=config.cpu_type,
        )

    @property
    def slots(self) -> tuple[CpuSlot, ...]:
        """Every possible CPU, in index order."""
        return self.topology.slots

    def is_ejectable(self, slot: CpuSlot) -> bool:
        """Whether the guest may eject ``slot`` (``_EJ0``): never the boot CPU;
        cold-booted CPUs only under ``allow_cold_unplug``."""
        if slot.index == 0:
            return False
        return not self.topology.is_cold_booted(slot) or self.allow_cold_unplug


__all__ = ["MachineDescription"]
