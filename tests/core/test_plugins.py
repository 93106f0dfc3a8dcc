"""Backend discovery, plugin hooks and their isolation from broken plugins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from vcpuhp import (
    AcceleratorBackend,
    BackendCapabilities,
    BackendNotFound,
    BackendNotViable,
    BackendVcpu,
    MachineConfig,
    PluginManager,
    PolicyRefused,
    Viability,
    VirtMachine,
    hookimpl,
)
from vcpuhp.plugins import BackendRegistry, LoadFailure
from vcpuhp.topology import CpuSlot
from vcpuhp_null import NullBackend, NullUnparkedBackend


class _Unviable(NullBackend):
    name = "unviable"

    @classmethod
    def viability(cls) -> Viability:
        return Viability.no("needs /dev/nothing")


def test_installed_null_backend_is_found_by_entry_point() -> None:
    pm = PluginManager()
    assert pm.backends.get("null") is NullBackend
    row = next(r for r in pm.backends.describe() if r["name"] == "null")
    assert row["viable"] and row["capabilities"]["parks_vcpus"]


def test_unknown_backend_lists_installed_and_how_to_install() -> None:
    registry = BackendRegistry()  # as installed with only vcpuhp-null
    registry.add(NullBackend)
    with pytest.raises(BackendNotFound) as info:
        registry.get("nosuch")
    message = str(info.value)
    assert "No vcpuhp backend named 'nosuch'" in message
    assert "Installed backends: null." in message
    assert ("Known backends you can install: kvm: pip install -e backends/kvm in a vcpuhp "
            "source checkout (vcpuhp-kvm is not on PyPI yet); tcg-unicorn: pip install -e "
            "backends/tcg-unicorn in a vcpuhp source checkout (vcpuhp-tcg-unicorn is not on "
            "PyPI yet).") in message
    assert "'vcpuhp.backends' entry-point group" in message


def test_unviable_backend_says_why() -> None:
    registry = BackendRegistry()
    registry.add(_Unviable)
    with pytest.raises(BackendNotViable, match="cannot run here: needs /dev/nothing"):
        registry.create("unviable")


def test_registry_rejects_bad_and_duplicate_names() -> None:
    registry = BackendRegistry()
    registry.add(NullBackend)

    class Clash(NullBackend):
        name = "null"

    class BadName(NullBackend):
        name = "Not OK"

    with pytest.raises(ValueError, match="taken by"):
        registry.add(Clash)
    with pytest.raises(ValueError, match="invalid name"):
        registry.add(BadName)
    with pytest.raises(ValueError, match="not an AcceleratorBackend"):
        registry.add(object)  # type: ignore[arg-type]


def test_a_plugin_registers_a_backend_through_the_hook() -> None:
    class Provider:
        @hookimpl
        def vcpuhp_register_backends(self, register: BackendRegistry) -> None:
            register.add(NullUnparkedBackend)

    pm = PluginManager([Provider()])
    machine = VirtMachine(MachineConfig.build("cpus=1,maxcpus=3", accel="null-unparked"),
                          plugins=pm)
    machine.realize()
    try:
        assert len(machine.parked) == 0
        machine.device_add("max-arm-cpu", "c1", **{"core-id": 1})
        assert machine.backend.stats()["vcpus"] == 2
        machine.check_invariants()
    finally:
        machine.shutdown()


def test_broken_backend_entry_point_is_reported_not_fatal() -> None:
    registry = BackendRegistry()
    registry.failures = [LoadFailure("vcpuhp.backends", "kvm", "ImportError: no cffi")]
    with pytest.raises(BackendNotFound, match="'kvm' is installed but failed to load: ImportError"):
        registry.get("kvm")


def test_policy_and_observer_hooks() -> None:
    seen: list[tuple[str, Any]] = []

    class Policy:
        @hookimpl
        def vcpuhp_device_add_allowed(self, machine: Any, slot: CpuSlot, driver: str,
                                      device_id: str) -> str | None:
            return "slot 5 is reserved" if slot.index == 5 else None

        @hookimpl
        def vcpuhp_device_del_allowed(self, machine: Any, vcpu: Any) -> str | None:
            return "keep it" if vcpu.device_id == "keep" else None

        @hookimpl
        def vcpuhp_cpu_plugged(self, machine: Any, vcpu: Any) -> None:
            seen.append(("plugged", vcpu.slot.index))

        @hookimpl
        def vcpuhp_machine_realized(self, machine: Any, backend: Any) -> None:
            seen.append(("realized", backend.name))

    machine = VirtMachine(MachineConfig.build("cpus=1,maxcpus=6"),
                          plugins=PluginManager([Policy()]))
    machine.realize()
    try:
        before = machine.snapshot_bytes()
        with pytest.raises(PolicyRefused, match="slot 5 is reserved"):
            machine.device_add("max-arm-cpu", "c5", **{"core-id": 5})
        assert machine.snapshot_bytes() == before
        machine.device_add("max-arm-cpu", "keep", **{"core-id": 4})
        with pytest.raises(PolicyRefused, match="keep it"):
            machine.device_del("keep")
        assert seen == [("realized", "null"), ("plugged", 4)]
    finally:
        machine.shutdown()


class _FailingRealize(NullBackend):
    """Fault injection: realize of CPU 2 fails."""

    name = "failing"

    def realize_vcpu(self, vcpu: BackendVcpu) -> None:
        if vcpu.slot.index == 2:
            from vcpuhp import BackendError

            raise BackendError("injected realize failure")
        super().realize_vcpu(vcpu)

    def power_on(self, vcpu: BackendVcpu, entry_point: int, args: Sequence[int]) -> None:
        super().power_on(vcpu, entry_point, args)


def test_failed_realize_leaves_machine_unchanged() -> None:
    from vcpuhp import BackendError

    machine = VirtMachine(MachineConfig.build("cpus=1,maxcpus=4"), backend=_FailingRealize())
    machine.realize()
    try:
        before = machine.snapshot_bytes()
        with pytest.raises(BackendError, match="injected"):
            machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
        assert machine.snapshot_bytes() == before
        machine.check_invariants()
        machine.device_add("max-arm-cpu", "c3", **{"core-id": 3})
    finally:
        machine.shutdown()


def test_capabilities_are_flags_not_names() -> None:
    caps = BackendCapabilities(executes_guest_code=True, parks_vcpus=False)
    assert caps.as_dict() == {"executes_guest_code": True, "parks_vcpus": False,
                              "can_snapshot": False, "in_kernel_irqchip": False}
    assert issubclass(NullBackend, AcceleratorBackend)
