"""What the guest sees (executing backends) and who owns the interrupt controller."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from vcpuhp import events as ev
from vcpuhp.backend import rule
from vcpuhp.errors import StateError
from vcpuhp.gic import Gicv3
from vcpuhp.testing.rig import Rig

RigFactory = Callable[..., Rig]


class TestRunsTheGuest:
    """A backend that ``executes_guest_code`` runs the bundled guest to the seed transcript."""

    @pytest.mark.requires("executes_guest_code")
    def test_the_guest_prints_the_masks_the_machine_reports(self,
                                                            vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=4,maxcpus=6", maxcpus=2)
        machine = rig.machine
        rig.wait_until(lambda: "possible 0-5 present 0-5 enabled 0-3 online 0-1"
                       in machine.console, "the guest's boot masks on the console")
        with machine.events.recorder() as recorder:
            rig.plug(4, "core4")
            recorder.wait_for(ev.CONSOLE, lambda e: e.data["line"] ==
                              "possible 0-5 present 0-5 enabled 0-4 online 0-1,4",
                              timeout=rig.timeouts.settle)
        rig.unplug("core4")


class TestInterruptController:
    """The interrupt controller is the backend's own exactly when it says ``in_kernel_irqchip``."""

    @pytest.mark.requires("in_kernel_irqchip")
    def test_an_in_kernel_irqchip_replaces_the_userspace_gic(self,
                                                            vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=2,maxcpus=3", guest="scripted")
        assert not isinstance(rig.machine.irqchip, Gicv3), rule("irqchip")
        with pytest.raises(StateError):
            _ = rig.machine.gic
        methods = rig.probe.methods()
        assert methods.count("create_irqchip") == 1
        assert methods.index("create_irqchip") < methods.index("attach")
        rig.scripted_plug(2, "c2")
        rig.machine.check_invariants()

    @pytest.mark.requires(in_kernel_irqchip=False)
    def test_the_userspace_gic_wires_exactly_the_enabled_cpus(self,
                                                              vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=1,maxcpus=3", guest="scripted")
        gic = rig.machine.gic
        assert [gic.is_accessible(i) for i in range(3)] == [True, False, False]
        rig.scripted_plug(2, "c2")
        assert [gic.is_accessible(i) for i in range(3)] == [True, False, True]
        rig.scripted_unplug(2)
        assert [gic.is_accessible(i) for i in range(3)] == [True, False, False]
