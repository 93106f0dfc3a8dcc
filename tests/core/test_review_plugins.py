"""A broken viability check or backend-registering plugin never stops start-up."""

from __future__ import annotations

import pytest

from vcpuhp import BackendNotViable, PluginManager, Viability, hookimpl
from vcpuhp.plugins import BackendRegistry, LoadFailure
from vcpuhp_null import NullBackend, NullUnparkedBackend


class _CrashingViability(NullBackend):
    name = "crashing"

    @classmethod
    def viability(cls) -> Viability:
        raise OSError("cannot open /dev/kvm-ish")


def test_a_raising_viability_check_is_backend_not_viable() -> None:
    registry = BackendRegistry()
    registry.add(_CrashingViability)
    with pytest.raises(BackendNotViable,
                       match=r"backend 'crashing' cannot run here: viability check failed: "
                             r"OSError: cannot open /dev/kvm-ish"):
        registry.create("crashing")


def test_a_raising_register_backends_hook_is_recorded_and_others_still_register() -> None:
    class Broken:
        @hookimpl
        def vcpuhp_register_backends(self, register: BackendRegistry) -> None:
            raise RuntimeError("plugin bug")

    class Provider:
        @hookimpl
        def vcpuhp_register_backends(self, register: BackendRegistry) -> None:
            register.add(NullUnparkedBackend)

    class NoArguments:
        @hookimpl
        def vcpuhp_register_backends(self) -> None:
            NoArguments.called = True

        called = False

    broken = Broken()
    pm = PluginManager([Provider(), broken, NoArguments()], load_entry_points=False)
    assert pm.backends.get("null-unparked") is NullUnparkedBackend
    assert NoArguments.called
    name = pm.pm.get_name(broken)
    assert name is not None
    assert pm.failures == [LoadFailure(
        "vcpuhp.plugins", name, "vcpuhp_register_backends failed: RuntimeError: plugin bug",
    )]


def test_a_register_backends_hook_adding_a_bad_backend_is_recorded() -> None:
    class Clash(NullBackend):
        name = "null"

    class Provider:
        @hookimpl
        def vcpuhp_register_backends(self, register: BackendRegistry) -> None:
            register.add(Clash)

    pm = PluginManager([Provider()])
    assert pm.backends.get("null") is NullBackend
    assert any("ValueError: backend name 'null' is taken by" in f.error for f in pm.failures)
