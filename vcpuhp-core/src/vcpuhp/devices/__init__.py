"""Memory-mapped devices of the ``virt`` machine, each a pure state machine.

A device exposes ``read(offset, size)`` and ``write(offset, size, value)``;
what it does to the rest of the machine goes through the small protocol it is
given at construction.
"""

from vcpuhp.devices.cpu_hotplug import CpuHotplugRegisters, HotplugController
from vcpuhp.devices.ged import GED_EVENT_CPU_HOTPLUG, AcpiGed
from vcpuhp.devices.pl011 import Pl011

__all__ = [
    "GED_EVENT_CPU_HOTPLUG",
    "AcpiGed",
    "CpuHotplugRegisters",
    "HotplugController",
    "Pl011",
]
