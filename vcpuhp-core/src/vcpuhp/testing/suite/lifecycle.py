"""Life cycle: realize, plug, unplug, re-plug, shutdown; parking; registration."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from vcpuhp import events as ev
from vcpuhp.backend import BackendCapabilities, Viability, rule
from vcpuhp.errors import (
    ConfigError,
    DeviceError,
    DeviceNotFound,
    PolicyRefused,
    StateError,
    TopologyError,
)
from vcpuhp.plugin_settings import PluginSettings
from vcpuhp.plugins import PluginManager
from vcpuhp.testing.pytest_plugin import BackendUnderTest
from vcpuhp.testing.rig import Rig
from vcpuhp.vcpu import VcpuState

RigFactory = Callable[..., Rig]


class TestRegistration:
    """The backend is what it says it is, under the name users select it by."""

    def test_registered_under_its_own_name(self, vcpuhp_backend: BackendUnderTest) -> None:
        registry = PluginManager(settings=PluginSettings(autoload=False)).backends
        cls = registry.get(vcpuhp_backend.name)
        assert cls is vcpuhp_backend.cls
        assert cls.name == vcpuhp_backend.name
        assert isinstance(cls.capabilities, BackendCapabilities)
        assert isinstance(cls.distribution, str) and cls.distribution, \
            f"{cls.__qualname__}.distribution must name the distribution that installs it"

    def test_viability_says_it_can_run_here(self, vcpuhp_backend: BackendUnderTest) -> None:
        viability = vcpuhp_backend.cls.viability()
        assert isinstance(viability, Viability)
        assert viability.viable, viability.reason

    def test_an_unknown_option_is_a_config_error(self,
                                                 vcpuhp_backend: BackendUnderTest) -> None:
        option = "vcpuhp-suite-no-such-option"
        try:
            vcpuhp_backend.cls({**vcpuhp_backend.options, option: "1"})
        except ConfigError as exc:
            assert option in str(exc), f"{rule('options')}; got: {exc}"
        else:
            pytest.fail(f"option {option!r} was accepted; {rule('options')}")


class TestLifecycle:
    """From realize to shutdown, as the contract's call order says."""

    def test_every_possible_cpu_is_present(self, vcpuhp_rig: RigFactory) -> None:
        machine = vcpuhp_rig("cpus=2,maxcpus=6", guest="scripted").machine
        masks = machine.cpu_masks()
        assert masks.possible == masks.present == frozenset(range(6))
        assert masks.enabled == {0, 1}

    def test_realize_calls_the_backend_in_the_documented_order(
        self, vcpuhp_rig: RigFactory,
    ) -> None:
        rig = vcpuhp_rig("cpus=2,maxcpus=5", guest="scripted")
        caps = rig.machine.backend.capabilities
        calls = [m for m in rig.probe.methods() if m not in ("stats", "kick")]
        created = 5 if caps.parks_vcpus else 2
        expected = (["create_irqchip"] if caps.in_kernel_irqchip else []) + ["attach"]
        realize = calls[len(expected):calls.index("vcpus_created")]
        assert calls[:len(expected)] == expected
        assert realize.count("create_vcpu") == created
        assert realize.count("realize_vcpu") == 2
        assert calls[calls.index("vcpus_created") + 1] == "power_on"
        assert calls.count("vcpus_created") == 1

    def test_power_on_leads_to_vcpu_started(self, vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=2,maxcpus=4", guest="scripted")
        assert [c.cpu for c in rig.probe.durations("power_on")] == [0]
        assert any(s.index == 0 and s.state == "on-pending" for s in rig.machine.starts), \
            rule("vcpu-started")
        rig.machine.device_add(rig.machine.config.cpu_type, "c2", **{"core-id": 2})
        assert rig.guest.cpu_on(2) == 0
        rig.guest.wait_online(2)

    def test_a_realized_cpu_runs_nothing_until_power_on(self, vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=1,maxcpus=4", guest="scripted")
        rig.machine.device_add(rig.machine.config.cpu_type, "c3", **{"core-id": 3})
        rig.machine.events.flush()
        time.sleep(rig.timeouts.quiet)  # give a vCPU that runs too early the chance to show it
        assert rig.machine.vcpus[3].state is VcpuState.POWERED_OFF
        assert [s for s in rig.machine.starts if s.index == 3] == [], rule("powered-off")
        assert rig.guest.cpu_on(3) == 0
        rig.guest.wait_online(3)

    def test_cold_booted_cpus_come_online_when_the_guest_starts_them(
        self, vcpuhp_rig: RigFactory,
    ) -> None:
        rig = vcpuhp_rig("cpus=4,maxcpus=6", maxcpus=3)
        rig.wait_online(frozenset({0, 1, 2}))
        assert rig.machine.cpu_masks().enabled == {0, 1, 2, 3}
        rig.machine.check_invariants()

    def test_plug_then_unplug_round_trip(self, vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=4,maxcpus=6", maxcpus=2)
        rig.wait_online(frozenset({0, 1}))
        rig.plug(4, "core4")
        assert rig.machine.cpu_masks().enabled == {0, 1, 2, 3, 4}
        assert 4 in rig.machine.cpu_masks().online
        deleted = rig.unplug("core4")
        assert deleted.data["path"] == "/machine/peripheral/core4"
        assert rig.machine.cpu_masks().enabled == {0, 1, 2, 3}
        assert rig.machine.vcpus[4].state is VcpuState.UNPLUGGED
        rig.machine.check_invariants()

    def test_the_same_slot_can_be_plugged_again_and_again(self, vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=1,maxcpus=3", maxcpus=1)
        for device_id in ("a0", "a1", "a2", "again", "again"):
            rig.cycle(2, device_id)
            rig.machine.check_invariants()
        assert rig.machine.cpu_masks().enabled == {0}

    def test_refused_requests_leave_the_machine_unchanged(self, vcpuhp_rig: RigFactory) -> None:
        machine = vcpuhp_rig("cpus=2,maxcpus=4", guest="scripted").machine
        before = machine.snapshot_bytes()
        cpu = machine.config.cpu_type
        other = "cortex-a57-arm-cpu" if cpu != "cortex-a57-arm-cpu" else "max-arm-cpu"
        bad: list[tuple[Callable[[], Any], type[Exception], str]] = [
            (lambda: machine.device_add("nosuch-cpu", "c2", **{"core-id": 2}), DeviceError,
             "valid:"),
            (lambda: machine.device_add(other, "c2", **{"core-id": 2}), DeviceError,
             "does not match"),
            (lambda: machine.device_add(cpu, None, **{"core-id": 2}), DeviceError,
             "needs an 'id'"),
            (lambda: machine.device_add(cpu, "c2", **{"core-id": 9}), TopologyError, "0-3"),
            (lambda: machine.device_add(cpu, "c2", **{"core-id": 0}), DeviceError,
             "already plugged"),
            (lambda: machine.device_add(cpu, "c2", **{"core-id": 2, "bogus": 1}), DeviceError,
             "bogus"),
            (lambda: machine.device_del("nosuch"), DeviceNotFound, "not found"),
            (lambda: machine.device_del(machine.vcpus[1].qom_path), PolicyRefused,
             "enabled at boot"),
        ]
        for call, error, words in bad:
            with pytest.raises(error, match=words):
                call()
            assert machine.snapshot_bytes() == before

    def test_shutdown_is_final_and_closes_the_backend_once(self, vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=2,maxcpus=4", guest="scripted")
        rig.scripted_plug(2, "c2")
        with rig.machine.events.recorder() as recorder:
            rig.machine.shutdown()
            rig.machine.shutdown()
        assert rig.probe.methods().count("close") == 1
        assert rig.machine.cpu_masks().online == frozenset()
        with pytest.raises(StateError):
            rig.machine.device_add(rig.machine.config.cpu_type, "c3", **{"core-id": 3})
        assert ev.CPU_POWERED_ON not in recorder.names()


class TestParking:
    """Parking (capability ``parks_vcpus``) and its opposite."""

    @pytest.mark.requires("parks_vcpus")
    def test_parked_vcpus_are_possible_minus_realized(self, vcpuhp_rig: RigFactory) -> None:
        machine = vcpuhp_rig("cpus=3,maxcpus=8", guest="scripted").machine
        assert sorted(machine.parked) == [s.arch_id for s in machine.topology.slots[3:]]
        machine.check_invariants()

    @pytest.mark.requires("parks_vcpus")
    def test_every_plug_of_a_slot_takes_the_same_vcpu_object(
        self, vcpuhp_rig: RigFactory,
    ) -> None:
        rig = vcpuhp_rig("cpus=1,maxcpus=3", guest="scripted")
        parked = rig.machine.parked.handles()[rig.machine.topology.slots[2].arch_id]
        created = rig.probe.created()
        for device_id in ("p0", "p1", "p2"):
            vcpu = rig.scripted_plug(2, device_id)
            assert vcpu.handle is parked, rule("parking")
            rig.scripted_unplug(2)
        assert rig.probe.created() == created, f"create_vcpu called on plug: {rule('parking')}"
        assert len(rig.probe.live_vcpus()) == 3

    @pytest.mark.requires(parks_vcpus=False)
    def test_a_vcpu_is_created_on_plug_and_freed_on_eject(self, vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=1,maxcpus=3", guest="scripted")
        assert len(rig.probe.live_vcpus()) == 1
        for device_id in ("n0", "n1", "n2"):
            rig.scripted_plug(2, device_id)
            assert len(rig.probe.live_vcpus()) == 2
            rig.scripted_unplug(2)
            live = rig.probe.live_vcpus()
            assert len(live) == 1, (f"{len(live)} vCPU objects alive after eject: "
                                    f"{live!r}; {rule('destroy-frees')}")
        assert rig.probe.created() == 4
