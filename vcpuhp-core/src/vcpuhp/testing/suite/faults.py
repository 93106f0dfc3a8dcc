"""Failure injection: each contract method fails once; the machine must be as it was.

The backend under test is wrapped (:func:`vcpuhp.testing.probe.probed`) so a
chosen method raises instead of running, once -- what a backend does that
failed before changing anything. The machine must roll back exactly
(``snapshot_bytes()`` equal), say which method failed, leave no thread, file
descriptor or vCPU object behind, and work again afterwards: so the backend
must cope with the machine's undo steps (a destroy or park of a vCPU whose
realize failed, a close after a failed realize, a second realize).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vcpuhp.backend import rule
from vcpuhp.config import MachineConfig
from vcpuhp.errors import BackendCallError, BackendError, ContractViolation
from vcpuhp.machine import RunState
from vcpuhp.plugins import PluginManager
from vcpuhp.psci import PsciReturn
from vcpuhp.testing.guest import quiet_guest_image
from vcpuhp.testing.probe import ProbedMachine, probe_of, probed
from vcpuhp.testing.pytest_plugin import BackendUnderTest
from vcpuhp.testing.resources import Resources, settle_leaks
from vcpuhp.testing.rig import Rig

RigFactory = Callable[..., Rig]


def _injected(method: str) -> BackendError:
    return BackendError(f"vcpuhp suite: injected failure of {method}")


def _check_names(exc: BackendCallError, method: str) -> None:
    """The error names the method; then its tracebacks let go of the frames' locals
    (which hold vCPU objects the suite is about to count)."""
    assert exc.method == method, f"the error names {exc.method!r}, not {method!r}"
    assert method in str(exc), f"the message does not name {method}: {exc}"
    seen: BaseException | None = exc
    while seen is not None:
        if seen.__traceback__ is not None:
            traceback.clear_frames(seen.__traceback__)
        seen = seen.__cause__ or seen.__context__


_REALIZE_CASES = [
    pytest.param("attach", id="attach"),
    pytest.param("create_vcpu", id="create_vcpu"),
    pytest.param("realize_vcpu", id="realize_vcpu"),
    pytest.param("vcpus_created", id="vcpus_created"),
    pytest.param("power_on", id="power_on"),
]


class TestFailureInjection:
    """Every contract method may fail; a failure leaves the machine exactly as it was."""

    @pytest.mark.parametrize("method", _REALIZE_CASES)
    def test_a_failure_during_realize_is_undone(
        self, method: str, vcpuhp_machine: Callable[..., ProbedMachine],
        vcpuhp_backend: BackendUnderTest, tmp_path: Path,
    ) -> None:
        kernel = ({"kernel": quiet_guest_image(tmp_path)}
                  if vcpuhp_backend.capabilities.executes_guest_code else {})
        before_machine = Resources.measure()
        machine = vcpuhp_machine("cpus=2,maxcpus=4", **kernel)
        probe = probe_of(machine.backend)
        before = machine.snapshot_bytes()
        probe.arm(method, lambda: _injected(method),
                  when=lambda cpu: method != "realize_vcpu" or cpu == 1)
        with pytest.raises(BackendCallError) as info:
            machine.realize()
        _check_names(info.value, method)
        assert machine.snapshot_bytes() == before
        assert machine.run_state is RunState.PRELAUNCH
        assert not probe.live_vcpus(), f"{rule('close-frees')} (after a failed realize)"
        problems = settle_leaks(before_machine, None)
        assert not problems, f"after a failed realize: {'; '.join(problems)}"
        again = vcpuhp_machine("cpus=2,maxcpus=4", **kernel)
        again.realize()
        assert again.query_status()["status"] == "running"
        again.check_invariants()

    @pytest.mark.requires("in_kernel_irqchip")
    def test_a_failure_of_create_irqchip_stops_construction(
        self, vcpuhp_backend: BackendUnderTest,
        vcpuhp_plugin_manager: Callable[[], PluginManager],
        vcpuhp_machine_options: dict[str, Any],
    ) -> None:
        before = Resources.measure()
        backend = probed(vcpuhp_backend.cls)(dict(vcpuhp_backend.options))
        probe_of(backend).arm("create_irqchip", lambda: _injected("create_irqchip"))
        config = MachineConfig.build("cpus=1,maxcpus=2", accel=vcpuhp_backend.name,
                                     backend_options=dict(vcpuhp_backend.options),
                                     **vcpuhp_machine_options)
        try:
            with pytest.raises(BackendCallError) as info:
                ProbedMachine(config, backend=backend,
                              plugins=vcpuhp_plugin_manager()).shutdown()
            _check_names(info.value, "create_irqchip")
        finally:
            backend.close()
        assert not settle_leaks(before, None)

    @pytest.mark.requires(parks_vcpus=False)
    def test_a_failed_create_vcpu_refuses_the_plug(self, vcpuhp_rig: RigFactory) -> None:
        self._plug_fails(vcpuhp_rig, "create_vcpu")

    def test_a_failed_realize_vcpu_refuses_the_plug(self, vcpuhp_rig: RigFactory) -> None:
        self._plug_fails(vcpuhp_rig, "realize_vcpu")

    @staticmethod
    def _plug_fails(vcpuhp_rig: RigFactory, method: str) -> None:
        rig = vcpuhp_rig("cpus=1,maxcpus=3", guest="scripted")
        machine = rig.machine
        before, resources = machine.snapshot_bytes(), Resources.measure(rig.probe)
        rig.probe.arm(method, lambda: _injected(method))
        with pytest.raises(BackendCallError) as info:
            machine.device_add(machine.config.cpu_type, "c2", **{"core-id": 2})
        _check_names(info.value, method)
        assert machine.snapshot_bytes() == before
        problems = settle_leaks(resources, rig.probe)
        assert not problems, f"after a refused plug: {'; '.join(problems)}"
        rig.scripted_plug(2, "c2")
        rig.scripted_unplug(2)
        machine.check_invariants()

    def test_a_failed_power_on_answers_cpu_on_with_internal_failure(
        self, vcpuhp_rig: RigFactory,
    ) -> None:
        rig = vcpuhp_rig("cpus=1,maxcpus=3", guest="scripted")
        rig.scripted_plug(2, "c2", online=False)
        before = rig.machine.snapshot_bytes()
        rig.probe.arm("power_on", lambda: _injected("power_on"))
        assert rig.guest.cpu_on(2) == PsciReturn.INTERNAL_FAILURE
        assert rig.machine.snapshot_bytes() == before
        assert rig.guest.cpu_on(2) == 0
        rig.guest.wait_online(2)

    def test_a_failed_power_off_answers_cpu_off_with_denied(self, vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=1,maxcpus=3", guest="scripted")
        rig.scripted_plug(2, "c2")
        before = rig.machine.snapshot_bytes()
        rig.probe.arm("power_off", lambda: _injected("power_off"))
        assert rig.guest.cpu_off(2) == PsciReturn.DENIED
        assert rig.machine.snapshot_bytes() == before
        rig.scripted_unplug(2)

    def test_a_failed_unrealize_refuses_the_eject(self, vcpuhp_rig: RigFactory) -> None:
        self._eject_fails(vcpuhp_rig, "unrealize_vcpu")

    @pytest.mark.requires(parks_vcpus=False)
    def test_a_failed_destroy_refuses_the_eject(self, vcpuhp_rig: RigFactory) -> None:
        self._eject_fails(vcpuhp_rig, "destroy_vcpu")

    @staticmethod
    def _eject_fails(vcpuhp_rig: RigFactory, method: str) -> None:
        rig = vcpuhp_rig("cpus=1,maxcpus=3", guest="scripted")
        rig.scripted_plug(2, "c2")
        assert rig.guest.cpu_off(2) == 0
        before = rig.machine.snapshot_bytes()
        rig.probe.arm(method, lambda: _injected(method))
        with pytest.raises(BackendCallError) as info:
            rig.machine.eject(2)
        _check_names(info.value, method)
        assert rig.machine.snapshot_bytes() == before
        rig.machine.check_invariants()
        resources = Resources.measure(rig.probe)
        rig.machine.eject(2)
        assert not rig.machine.vcpus[2].enabled
        assert rig.guest.cpu_on(2) == PsciReturn.DENIED
        problems = settle_leaks(resources, rig.probe,
                                vcpus=resources.vcpus - (0 if rig.machine.backend
                                                         .capabilities.parks_vcpus else 1))
        assert not problems, f"after the eject: {'; '.join(problems)}"

    def test_a_failed_pause_leaves_the_machine_running(self, vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=2,maxcpus=3", guest="scripted")
        before = rig.machine.snapshot_bytes()
        rig.probe.arm("pause", lambda: _injected("pause"))
        with pytest.raises(BackendCallError) as info:
            rig.machine.stop()
        _check_names(info.value, "pause")
        assert rig.machine.snapshot_bytes() == before
        rig.machine.stop()
        rig.machine.cont()

    def test_a_failed_resume_leaves_the_machine_paused(self, vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=2,maxcpus=3", guest="scripted")
        rig.machine.stop()
        before = rig.machine.snapshot_bytes()
        rig.probe.arm("resume", lambda: _injected("resume"))
        with pytest.raises(BackendCallError) as info:
            rig.machine.cont()
        _check_names(info.value, "resume")
        assert rig.machine.snapshot_bytes() == before
        assert rig.machine.query_status()["status"] == "paused"
        rig.machine.cont()
        rig.scripted_plug(2, "c2")

    def test_a_failed_close_is_reported_and_shutdown_still_finishes(
        self, vcpuhp_rig: RigFactory, vcpuhp_backend: BackendUnderTest,
    ) -> None:
        before = Resources.measure()
        rig = vcpuhp_rig("cpus=2,maxcpus=3", guest="scripted")
        rig.probe.arm("close", lambda: _injected("close"))
        with pytest.raises(BackendCallError) as info:
            rig.machine.shutdown()
        _check_names(info.value, "close")
        assert rig.machine.is_shut_down and rig.machine.memory is None
        vcpuhp_backend.cls.close(rig.machine.backend)  # what the failed close left
        assert not settle_leaks(before, None)

    @pytest.mark.parametrize("error", [RuntimeError, OSError, KeyError])
    def test_an_exception_other_than_backend_error_is_a_named_contract_violation(
        self, error: type[Exception], vcpuhp_rig: RigFactory,
    ) -> None:
        rig = vcpuhp_rig("cpus=1,maxcpus=3", guest="scripted")
        before = rig.machine.snapshot_bytes()
        rig.probe.arm("realize_vcpu", lambda: error("backend bug"))
        with pytest.raises(ContractViolation) as info:
            rig.machine.device_add(rig.machine.config.cpu_type, "c2", **{"core-id": 2})
        assert rule("errors", "realize_vcpu") in str(info.value)
        assert isinstance(info.value.__cause__, error)
        assert rig.machine.snapshot_bytes() == before
        rig.scripted_plug(2, "c2")
