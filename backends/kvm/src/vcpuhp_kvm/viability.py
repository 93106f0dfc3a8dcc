"""Can the KVM backend work on this host, and if not, why (keyring's ``viable``, with reasons).

:func:`probe` checks, in order, and stops at the first failure: the host
architecture, ``/dev/kvm`` and the permission to open it, the API version,
the capabilities the backend uses, then on a scratch VM the SMCCC filter
(Linux 6.4+) and the in-kernel vGICv3. It costs one ``open``, a dozen
ioctls and one short-lived VM, and never raises.
"""

from __future__ import annotations

import errno
import platform
from dataclasses import dataclass, field
from typing import Final

from vcpuhp.backend import Viability
from vcpuhp.errors import ConfigError
from vcpuhp_kvm import uapi
from vcpuhp_kvm.system import KVM_DEVICE, Kvm

ARM64_MACHINES: Final = frozenset({"aarch64", "arm64"})

REQUIRED_CAPABILITIES: Final[tuple[tuple[int, str, str], ...]] = (
    (uapi.KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY", "guest RAM"),
    (uapi.KVM_CAP_ONE_REG, "KVM_CAP_ONE_REG", "vCPU registers"),
    (uapi.KVM_CAP_ARM_PSCI_0_2, "KVM_CAP_ARM_PSCI_0_2", "PSCI 0.2+ vCPUs"),
    (uapi.KVM_CAP_DEVICE_CTRL, "KVM_CAP_DEVICE_CTRL", "the in-kernel vGIC"),
    (uapi.KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT", "kicking vCPUs"),
    (uapi.KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE", "vCPU power state"),
)
"""``(capability, name, what the backend needs it for)``."""


@dataclass(frozen=True)
class HostSupport:
    """The outcome of :func:`probe`: viability plus the limits a machine must respect."""

    viability: Viability
    kernel: str = field(default_factory=platform.release)
    """The host kernel release (``uname -r``)."""
    max_vcpus: int = 0
    """``KVM_CAP_MAX_VCPUS`` (0 when the probe stopped before reading it)."""
    max_vcpu_id: int = 0
    """``KVM_CAP_MAX_VCPU_ID``: vCPU ids must be below it."""
    max_ipa_bits: int = 0
    """``KVM_CAP_ARM_VM_IPA_SIZE``: the largest guest-physical address size."""

    def check_maxcpus(self, maxcpus: int) -> None:
        """Raise :class:`~vcpuhp.errors.ConfigError` if ``maxcpus`` vCPUs exceed this host's KVM."""
        limit = min(self.max_vcpus, self.max_vcpu_id or self.max_vcpus)
        if maxcpus > limit:
            raise ConfigError(
                f"maxcpus={maxcpus} is more vCPUs than this host's KVM allows: at most "
                f"{limit} (KVM_CAP_MAX_VCPUS {self.max_vcpus}, KVM_CAP_MAX_VCPU_ID "
                f"{self.max_vcpu_id}); KVM cannot add vCPUs later, so every possible CPU "
                "must be created at start"
            )


def architecture_reason(machine: str) -> str:
    """Why KVM cannot run arm64 guests on a ``machine`` (``uname -m``) host."""
    return (
        f"KVM runs only same-architecture guests; this host is {machine}: use tcg-unicorn "
        "here, or `tox -e kvm-arm64` to test in an emulated arm64 host"
    )


def probe(path: str = KVM_DEVICE, machine: str | None = None) -> HostSupport:
    """Check this host for everything the KVM backend needs; never raises."""
    machine = machine if machine is not None else platform.machine()
    if machine not in ARM64_MACHINES:
        return HostSupport(Viability.no(architecture_reason(machine)))
    try:
        return _probe_kvm(path)
    except Exception as exc:  # a probe must answer, whatever went wrong
        return HostSupport(Viability.no(f"probing {path} failed: {type(exc).__name__}: {exc}"))


def viability() -> Viability:
    """Only the verdict of :func:`probe`."""
    return probe().viability


def _probe_kvm(path: str) -> HostSupport:
    kernel = platform.release()
    try:
        kvm = Kvm(path)
    except OSError as exc:
        return HostSupport(Viability.no(_open_failure(path, exc)), kernel)
    with kvm:
        version = kvm.api_version()
        if version != uapi.KVM_API_VERSION:
            return HostSupport(Viability.no(
                f"{path} speaks KVM API version {version}; vcpuhp-kvm needs "
                f"{uapi.KVM_API_VERSION}"), kernel)
        for capability, name, purpose in REQUIRED_CAPABILITIES:
            if kvm.check_extension(capability) <= 0:
                return HostSupport(Viability.no(
                    f"this kernel's KVM ({kernel}) lacks {name}, needed for {purpose}"), kernel)
        max_vcpus = kvm.max_vcpus()
        max_vcpu_id = kvm.check_extension(uapi.KVM_CAP_MAX_VCPU_ID) or max_vcpus
        max_ipa_bits = kvm.max_ipa_bits()
        limits = {"max_vcpus": max_vcpus, "max_vcpu_id": max_vcpu_id,
                  "max_ipa_bits": max_ipa_bits}
        with kvm.create_vm() as scratch:
            if not scratch.has_smccc_filter():
                return HostSupport(Viability.no(
                    f"kernel {kernel} has no SMCCC filter (KVM_ARM_VM_SMCCC_FILTER, Linux "
                    "6.4 or later), which hands PSCI CPU_ON/CPU_OFF to the machine's hotplug "
                    "policy"), kernel, **limits)
            if not scratch.supports_device(uapi.KVM_DEV_TYPE_ARM_VGIC_V3):
                return HostSupport(Viability.no(
                    "KVM here cannot create an in-kernel GICv3 (KVM_DEV_TYPE_ARM_VGIC_V3): "
                    "the host's interrupt controller cannot virtualise one"), kernel, **limits)
    return HostSupport(Viability.ok(), kernel, **limits)


def _open_failure(path: str, exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return (f"no {path}: this kernel has no KVM (CONFIG_KVM), or the CPU did not start "
                "at EL2 (under QEMU: -M virt,virtualization=on)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"no permission to open {path} read-write: add this user to the group that "
                f"owns it (ls -l {path}; usually 'kvm')")
    return f"cannot open {path}: {exc.strerror} ({errno.errorcode.get(exc.errno or 0, '?')})"
