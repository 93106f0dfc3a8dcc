"""The SMCCC filter that hands PSCI to the machine (``devices/vm.rst``, Linux 6.4+).

Which ranges, and why: PSCI owns function ids 0x00-0x1F of the standard
secure service calls, in both calling conventions (PSCI spec DEN0022,
"Function IDs"): ``0x84000000-0x8400001F`` (SMC32/HVC32) and
``0xC4000000-0xC400001F`` (SMC64/HVC64). Both whole ranges go to user space,
not just ``CPU_ON`` and ``CPU_OFF``: the machine's PSCI firmware is the one
source of truth for which CPUs are on, so ``AFFINITY_INFO``, ``PSCI_FEATURES``,
``PSCI_VERSION``, ``CPU_SUSPEND`` and ``SYSTEM_OFF``/``RESET`` must be answered
from the same state that denied a ``CPU_ON``; leaving any of them to KVM would
let the guest see KVM's view instead (kvmtool forwards the same two ranges).
A function the machine does not implement gets ``NOT_SUPPORTED`` from it.
The Arm architecture calls (``0x80000000-0x8000FFFF``, ``0xC0000000-0xC000FFFF``:
``SMCCC_VERSION``, ``SMCCC_ARCH_FEATURES``, the workarounds) stay with KVM,
which reserves them: a filter range that touches them fails with ``EEXIST``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from vcpuhp_kvm import uapi
from vcpuhp_kvm.vm import Vm


@dataclass(frozen=True)
class SmcccRange:
    """Function ids ``[base, base + count)``."""

    base: int
    count: int

    def __contains__(self, function_id: object) -> bool:
        return isinstance(function_id, int) and self.base <= function_id < self.base + self.count


PSCI_32: Final = SmcccRange(0x8400_0000, 0x20)
"""PSCI's SMC32/HVC32 function ids."""
PSCI_64: Final = SmcccRange(0xC400_0000, 0x20)
"""PSCI's SMC64/HVC64 function ids."""
PSCI_RANGES: Final = (PSCI_32, PSCI_64)


def forward_psci_to_user(vm: Vm) -> None:
    """Install filter ranges that turn every PSCI call into a ``KVM_EXIT_HYPERCALL``.

    Before any vCPU runs (KVM refuses later with ``EBUSY``).
    """
    for psci in PSCI_RANGES:
        vm.set_smccc_filter(psci.base, psci.count, uapi.KVM_SMCCC_FILTER_FWD_TO_USER)


def is_psci(function_id: int) -> bool:
    """Whether ``function_id`` is in one of :data:`PSCI_RANGES`."""
    return any(function_id in psci for psci in PSCI_RANGES)
