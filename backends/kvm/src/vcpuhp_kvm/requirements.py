"""What a machine asks of the host's KVM, checked before anything is created.

Pure functions of the machine's description and the host's limits, so the
refusals are testable anywhere: the CPU model (under KVM the vCPUs are the
host's CPUs), the guest-physical address size the memory map needs, and
the number of vCPUs (:meth:`vcpuhp_kvm.viability.HostSupport.check_maxcpus`).
"""

from __future__ import annotations

from typing import Final

from vcpuhp import memmap
from vcpuhp.description import MachineDescription
from vcpuhp.errors import ConfigError

CPU_MODELS: Final = ("host", "max")
"""CPU models KVM provides, preferred first: the host's own CPU. ``max`` is
accepted as QEMU accepts it under KVM, where it means ``host``."""
KVM_DEFAULT_IPA_BITS: Final = 40
"""The guest-physical address size of a VM created with machine type 0."""
MIN_IPA_BITS: Final = 32


def check_cpu_model(model: str) -> None:
    """Refuse a CPU model KVM cannot give the guest (:class:`ConfigError`)."""
    if model not in CPU_MODELS:
        raise ConfigError(
            f"kvm: CPU model {model!r} is not available: under KVM the vCPUs are this host's "
            f"CPUs; use --cpu host (QOM type host-arm-cpu; 'max' means the same under KVM)"
        )


def highest_guest_address(description: MachineDescription) -> int:
    """One past the highest guest-physical address the machine uses (RAM, devices, GIC)."""
    ends = [description.ram_base + description.ram_size, memmap.GICD.end]
    ends += [region.base + region.size for region in description.redistributor_regions]
    ends += [memmap.UART.end, memmap.ACPI_GED.end, memmap.CPU_HOTPLUG.end]
    return max(ends)


def ipa_bits_needed(description: MachineDescription) -> int:
    """The guest-physical address size that covers every address the machine uses.

    With more than 123 possible CPUs the high redistributor region at
    ``0x40_0000_0000`` needs 39 bits; otherwise RAM's end decides (at least 32).
    """
    return max(MIN_IPA_BITS, (highest_guest_address(description) - 1).bit_length())


def choose_ipa_bits(description: MachineDescription, host_limit: int) -> int | None:
    """The ``KVM_CREATE_VM`` IPA size for ``description`` on a host whose KVM allows
    ``host_limit`` bits (0: no ``KVM_CAP_ARM_VM_IPA_SIZE``, only the default 40 bits).

    ``None`` means KVM's default size. :class:`ConfigError`, saying what reaches
    too high, when the host cannot map the machine.
    """
    needed = ipa_bits_needed(description)
    if host_limit == 0:
        if needed <= KVM_DEFAULT_IPA_BITS:
            return None
        host_limit = KVM_DEFAULT_IPA_BITS
    elif needed <= host_limit:
        return needed
    top = 1 << host_limit
    if description.ram_base + description.ram_size > top:
        what = (f"RAM up to {description.ram_base + description.ram_size:#x}; use at most "
                f"{(top - description.ram_base) // memmap.MiB}M of memory")
    else:
        what = (f"the redistributors of CPUs above 123 at {memmap.GICR_REGION_HIGH.base:#x}; "
                "use maxcpus=123 or fewer")
    raise ConfigError(
        f"kvm: this machine needs {needed}-bit guest-physical addresses ({what}), but this "
        f"host's KVM supports {host_limit} bits"
    )


__all__ = ["CPU_MODELS", "check_cpu_model", "choose_ipa_bits", "highest_guest_address",
           "ipa_bits_needed"]
