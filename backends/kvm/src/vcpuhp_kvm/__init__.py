"""vcpuhp's ``kvm`` accelerator: Linux KVM on arm64 through cffi (ABI mode).

:class:`KvmBackend` is the backend (entry point ``kvm`` in ``vcpuhp.backends``),
:class:`KvmInterruptController` the machine's interrupt controller under it
(KVM's in-kernel vGICv3). Below them, the native layer: the fd hierarchy
follows rust-vmm's kvm-ioctls: :class:`Kvm` (``/dev/kvm``) → :class:`Vm` →
:class:`VcpuFd` / :class:`DeviceFd`, one method per ioctl, typed exits from
:meth:`VcpuFd.run`. :class:`Vgicv3` sets up the in-kernel GICv3,
:func:`forward_psci_to_user` installs the SMCCC filter, and :func:`probe` says
whether this host can run the backend at all.
"""

from vcpuhp_kvm.backend import KvmBackend
from vcpuhp_kvm.device import DeviceFd
from vcpuhp_kvm.errors import KvmClosed, KvmError
from vcpuhp_kvm.exits import (
    ArmNisv,
    FailEntry,
    Hypercall,
    InternalError,
    Interrupted,
    MmioRead,
    MmioWrite,
    SystemEvent,
    UnknownExit,
    VcpuExit,
)
from vcpuhp_kvm.irqchip import KvmInterruptController
from vcpuhp_kvm.kick import KICK_SIGNAL, install_kick_handler
from vcpuhp_kvm.smccc import PSCI_RANGES, SmcccRange, forward_psci_to_user
from vcpuhp_kvm.system import Kvm
from vcpuhp_kvm.vcpu import VcpuFd, VcpuInit
from vcpuhp_kvm.vgic import Vgicv3
from vcpuhp_kvm.viability import HostSupport, probe, viability
from vcpuhp_kvm.vm import Vm, irq_line_number

__all__ = [
    "KICK_SIGNAL",
    "PSCI_RANGES",
    "ArmNisv",
    "DeviceFd",
    "FailEntry",
    "HostSupport",
    "Hypercall",
    "InternalError",
    "Interrupted",
    "Kvm",
    "KvmBackend",
    "KvmClosed",
    "KvmError",
    "KvmInterruptController",
    "MmioRead",
    "MmioWrite",
    "SmcccRange",
    "SystemEvent",
    "UnknownExit",
    "VcpuExit",
    "VcpuFd",
    "VcpuInit",
    "Vgicv3",
    "Vm",
    "forward_psci_to_user",
    "install_kick_handler",
    "irq_line_number",
    "probe",
    "viability",
]
