"""Where a command runs: in the emulated arm64 host, or directly on an arm64 KVM host."""

from __future__ import annotations

import enum
from typing import Final

from arm64host.errors import Arm64HostError

ARM64_MACHINES: Final = frozenset({"aarch64", "arm64"})


class Mode(enum.Enum):
    """How :func:`arm64host.runner.run` executes a command."""

    #: Boot the emulated arm64 KVM host and run the command inside it.
    EMULATED = "emulated"
    #: Run the command on this machine: it is an arm64 host with a usable /dev/kvm.
    DIRECT = "direct"


def is_arm64_kvm_host(machine: str, kvm_usable: bool) -> bool:
    """Whether a host of ``machine`` architecture with that /dev/kvm runs arm64 KVM itself."""
    return machine.lower() in ARM64_MACHINES and kvm_usable


def choose_mode(requested: str, machine: str, kvm_usable: bool) -> Mode:
    """The mode for ``requested`` (``auto``, ``emulated`` or ``direct``) on this host.

    ``auto`` runs directly exactly when the machine is arm64 and /dev/kvm is
    usable; ``direct`` on any other host is an error that says why.
    """
    native = is_arm64_kvm_host(machine, kvm_usable)
    if requested == "auto":
        return Mode.DIRECT if native else Mode.EMULATED
    if requested == "emulated":
        return Mode.EMULATED
    if requested == "direct":
        if not native:
            why = ("/dev/kvm is missing or not readable and writable"
                   if machine.lower() in ARM64_MACHINES
                   else f"this host is {machine}, not arm64")
            raise Arm64HostError(f"cannot run directly: {why}; use --mode emulated or auto")
        return Mode.DIRECT
    raise Arm64HostError(f"unknown mode {requested!r}; valid: auto, emulated, direct")
