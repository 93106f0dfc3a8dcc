"""A fault-injecting null backend (nova's ``fake.py`` habit): any contract method can be
made to fail on a chosen call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vcpuhp.backend import BackendVcpu
from vcpuhp.errors import BackendError
from vcpuhp.topology import CpuSlot
from vcpuhp_null import NullBackend, NullUnparkedBackend

#: The contract methods a plug/unplug cycle goes through.
CYCLE_METHODS = ("create_vcpu", "realize_vcpu", "power_on", "power_off", "unrealize_vcpu",
                 "destroy_vcpu", "kick")


class InjectedFault(BackendError):
    """The failure a :class:`FaultInjector` raises."""


class FaultInjector:
    """Arms one failure: ``method`` raises on its ``after``-th call from now (0: the next)."""

    def __init__(self) -> None:
        self.method: str | None = None
        self.after = 0
        self.fired: list[str] = []

    def arm(self, method: str, after: int = 0) -> None:
        self.method, self.after = method, after

    def check(self, method: str) -> None:
        if method != self.method:
            return
        if self.after:
            self.after -= 1
            return
        self.method = None
        self.fired.append(method)
        raise InjectedFault(f"injected failure in {method}")


class _Faulty:
    faults: FaultInjector

    def create_vcpu(self, slot: CpuSlot) -> Any:
        self.faults.check("create_vcpu")
        return super().create_vcpu(slot)  # type: ignore[misc]

    def realize_vcpu(self, vcpu: BackendVcpu) -> None:
        self.faults.check("realize_vcpu")
        super().realize_vcpu(vcpu)  # type: ignore[misc]

    def power_on(self, vcpu: BackendVcpu, entry_point: int, args: Sequence[int]) -> None:
        self.faults.check("power_on")
        super().power_on(vcpu, entry_point, args)  # type: ignore[misc]

    def power_off(self, vcpu: BackendVcpu) -> None:
        self.faults.check("power_off")
        super().power_off(vcpu)  # type: ignore[misc]

    def unrealize_vcpu(self, vcpu: BackendVcpu) -> None:
        self.faults.check("unrealize_vcpu")
        super().unrealize_vcpu(vcpu)  # type: ignore[misc]

    def destroy_vcpu(self, vcpu: BackendVcpu) -> None:
        self.faults.check("destroy_vcpu")
        super().destroy_vcpu(vcpu)  # type: ignore[misc]

    def kick(self, vcpu: BackendVcpu) -> None:
        self.faults.check("kick")
        super().kick(vcpu)  # type: ignore[misc]


class FaultyNullBackend(_Faulty, NullBackend):
    """The null backend (parks vCPUs) with injectable faults."""

    name = "null-faulty"

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        self.faults = FaultInjector()


class FaultyUnparkedBackend(_Faulty, NullUnparkedBackend):
    """The non-parking null backend (create on plug, destroy on eject) with faults."""

    name = "null-unparked-faulty"

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        self.faults = FaultInjector()
