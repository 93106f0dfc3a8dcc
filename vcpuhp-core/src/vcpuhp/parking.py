"""The parked-vCPU list: accelerator vCPUs that exist but belong to no enabled CPU.

Keyed by arch id, as the RFC's ``kvm_parked_vcpus`` list is. A handle is
never lost (unpark of an unknown arch id is an error, not ``None``) and never
parked twice.
"""

from __future__ import annotations

from collections.abc import Iterator

from vcpuhp.backend import BackendVcpu
from vcpuhp.errors import StateError


class ParkedVcpus:
    """Parked backend vCPUs by arch id."""

    def __init__(self) -> None:
        self._parked: dict[int, BackendVcpu] = {}

    def park(self, vcpu: BackendVcpu) -> None:
        """Park ``vcpu`` under its slot's arch id."""
        arch_id = vcpu.slot.arch_id
        if arch_id in self._parked:
            raise StateError(f"a vCPU with arch id {arch_id:#x} is already parked")
        if vcpu.realized:
            raise StateError(f"cannot park realized vCPU with arch id {arch_id:#x}")
        self._parked[arch_id] = vcpu

    def unpark(self, arch_id: int) -> BackendVcpu:
        """Take the parked vCPU with ``arch_id`` off the list."""
        try:
            return self._parked.pop(arch_id)
        except KeyError:
            raise StateError(f"no parked vCPU has arch id {arch_id:#x}") from None

    def __contains__(self, arch_id: object) -> bool:
        return arch_id in self._parked

    def __len__(self) -> int:
        return len(self._parked)

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._parked))

    def handles(self) -> dict[int, BackendVcpu]:
        """A copy of the list, arch id to vCPU."""
        return dict(self._parked)
