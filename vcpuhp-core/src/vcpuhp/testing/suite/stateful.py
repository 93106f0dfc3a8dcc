"""Random operation sequences against a model of the guest's masks (Hypothesis).

A :class:`~hypothesis.stateful.RuleBasedStateMachine` plays the guest by
hand (:class:`~vcpuhp.testing.guest.ScriptedGuest`) through random plugs,
``CPU_ON``, ``CPU_OFF``, ejects, refused requests and resets, and after every
step compares the machine with a model of what the guest's sysfs would show,
runs the machine's invariants; at the end of each sequence it counts the
backend's live vCPU objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vcpuhp.backend import rule as contract_rule
from vcpuhp.errors import DeviceError
from vcpuhp.psci import PsciReturn
from vcpuhp.testing.resources import Resources, settle_leaks
from vcpuhp.testing.rig import Rig

RigFactory = Callable[..., Rig]
SMP = "cpus=2,maxcpus=5"
COLD = frozenset({0, 1})
POSSIBLE = frozenset(range(5))

try:
    from hypothesis import HealthCheck, settings
    from hypothesis import strategies as st
    from hypothesis.stateful import (
        RuleBasedStateMachine,
        invariant,
        precondition,
        rule,
        run_state_machine_as_test,
    )
except ImportError:  # pragma: no cover - hypothesis is in vcpuhp-core[testing]
    HYPOTHESIS = False
else:
    HYPOTHESIS = True


def _hotplug_model(factory: RigFactory) -> Any:
    class HotplugModel(RuleBasedStateMachine):
        """The machine against a model: which CPUs are enabled and online."""

        def __init__(self) -> None:
            super().__init__()
            self.rig = factory(SMP, guest="scripted")
            self.enabled = set(COLD)
            self.online = {0}
            self.plugs = 0

        def teardown(self) -> None:
            try:
                self.backend_holds_the_vcpus_it_should()
            finally:
                self.rig.close()

        @rule(index=st.sampled_from(sorted(POSSIBLE - COLD)))
        def plug(self, index: int) -> None:
            machine = self.rig.machine
            if index in self.enabled:
                before = machine.snapshot_bytes()
                with pytest.raises(DeviceError, match="already plugged"):
                    machine.device_add(machine.config.cpu_type, f"again{index}",
                                       **{"core-id": index})
                assert machine.snapshot_bytes() == before
                return
            self.plugs += 1
            machine.device_add(machine.config.cpu_type, f"p{self.plugs}", **{"core-id": index})
            self.rig.guest.scan()
            self.enabled.add(index)

        @rule(index=st.sampled_from(sorted(POSSIBLE - {0})))
        def cpu_on(self, index: int) -> None:
            result = self.rig.guest.cpu_on(index)
            if index not in self.enabled:
                assert result == PsciReturn.DENIED
            elif index in self.online:
                assert result == PsciReturn.ALREADY_ON
            else:
                assert result == 0
                self.rig.guest.wait_online(index)
                self.online.add(index)

        @precondition(lambda self: len(self.online) > 1)
        @rule(data=st.data())
        def cpu_off(self, data: Any) -> None:
            index = data.draw(st.sampled_from(sorted(self.online - {0})))
            assert self.rig.guest.cpu_off(index) == 0
            self.online.discard(index)

        @precondition(lambda self: bool(self.enabled - COLD - self.online))
        @rule(data=st.data())
        def eject(self, data: Any) -> None:
            index = data.draw(st.sampled_from(sorted(self.enabled - COLD - self.online)))
            self.rig.machine.eject(index)
            self.enabled.discard(index)

        @rule()
        def reset(self) -> None:
            assert self.rig.guest.system_reset() == 0
            self.rig.guest.wait_online(0)
            self.online = {0}

        @invariant()
        def machine_matches_the_model(self) -> None:
            masks = self.rig.machine.cpu_masks()
            assert (set(masks.enabled), set(masks.online)) == (self.enabled, self.online)
            self.rig.machine.check_invariants()

        def backend_holds_the_vcpus_it_should(self) -> None:
            """Checked once per sequence (counting needs a full garbage collection)."""
            parks = self.rig.machine.backend.capabilities.parks_vcpus
            expected = len(POSSIBLE) if parks else len(self.enabled)
            live = len(self.rig.probe.live_vcpus())
            assert live == expected, (f"{live} backend vCPU objects alive, expected {expected}; "
                                      f"{contract_rule('parking')}")

    return HotplugModel


class TestRandomHotplug:
    """Random plug / online / offline / eject / reset sequences keep machine and model equal."""

    def test_random_sequences_match_the_model_and_leak_nothing(
        self, vcpuhp_rig: RigFactory,
    ) -> None:
        if not HYPOTHESIS:
            pytest.skip("needs hypothesis (pip install vcpuhp-core[testing])")
        before = Resources.measure()
        run_state_machine_as_test(_hotplug_model(vcpuhp_rig), settings=settings(
            max_examples=8, stateful_step_count=15, deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))
        problems = settle_leaks(before, None)
        assert not problems, f"after the random sequences: {'; '.join(problems)}"
