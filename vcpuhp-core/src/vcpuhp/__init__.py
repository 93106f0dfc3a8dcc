"""vcpuhp: ARM64 ``virt`` machines whose vCPUs can be hot-plugged while the guest runs.

The public surface: build a :class:`MachineConfig`, make a :class:`VirtMachine`,
``realize()`` it, ``device_add`` / ``device_del`` CPUs, query it, watch its
``events``.
"""

from vcpuhp.backend import AcceleratorBackend, BackendCapabilities, BackendVcpu, Viability
from vcpuhp.config import MachineConfig
from vcpuhp.errors import (
    BackendError,
    BackendNotFound,
    BackendNotViable,
    ConfigError,
    DeviceError,
    DeviceNotFound,
    GuestError,
    PolicyRefused,
    StateError,
    TopologyError,
    VcpuhpError,
)
from vcpuhp.events import MachineEvent
from vcpuhp.hookspec import hookimpl
from vcpuhp.machine import RunState, VirtMachine
from vcpuhp.masks import CpuMasks
from vcpuhp.plugins import PluginManager
from vcpuhp.topology import CpuSlot, SmpConfig, Topology
from vcpuhp.vcpu import Vcpu, VcpuState

__version__ = "0.1.0"

__all__ = [
    "AcceleratorBackend",
    "BackendCapabilities",
    "BackendError",
    "BackendNotFound",
    "BackendNotViable",
    "BackendVcpu",
    "ConfigError",
    "CpuMasks",
    "CpuSlot",
    "DeviceError",
    "DeviceNotFound",
    "GuestError",
    "MachineConfig",
    "MachineEvent",
    "PluginManager",
    "PolicyRefused",
    "RunState",
    "SmpConfig",
    "StateError",
    "Topology",
    "TopologyError",
    "Vcpu",
    "VcpuState",
    "VcpuhpError",
    "Viability",
    "VirtMachine",
    "hookimpl",
]
