"""Deliberately broken backends, one per contract rule, for the suite to catch.

Each class (here and in ``threaded_backends``) breaks exactly one rule of
:mod:`vcpuhp.backend` and is registered (by ``test_broken_backends.py``)
under the entry-point name in
:data:`BROKEN`; running the conformance suite on it must fail with a message
that names that rule. The null-based ones run nothing; :class:`Threaded` is a
correct backend whose vCPUs live on host threads (the shape of tcg-unicorn and
kvm), broken in ``threaded_backends`` in the ways threads can be broken.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from threaded_backends import HoldsOnToTheLock, LeavesThreadRunning, Threaded, WaitsForTheThread

from vcpuhp.backend import AcceleratorBackend, BackendVcpu
from vcpuhp.topology import CpuSlot
from vcpuhp_null import NullBackend, NullUnparkedBackend

# -- null-based: rules a backend breaks without any thread -------------------------------


class BlockingPowerOff(NullBackend):
    """Breaks *non-blocking*: power_off waits two seconds."""

    name = "broken-power-off-blocks"

    def power_off(self, vcpu: BackendVcpu) -> None:
        time.sleep(2.0)
        super().power_off(vcpu)


class LeaksVcpus(NullUnparkedBackend):
    """Breaks *destroy-frees*: destroyed vCPUs are kept in a list (stats() does not say)."""

    name = "broken-leaks-vcpus"

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        self.graveyard: list[BackendVcpu] = []

    def destroy_vcpu(self, vcpu: BackendVcpu) -> None:
        self.graveyard.append(vcpu)
        super().destroy_vcpu(vcpu)


class RaisesRuntimeError(NullBackend):
    """Breaks *errors*: realize_vcpu of a hot-plugged CPU raises a plain RuntimeError."""

    name = "broken-runtime-error"

    def realize_vcpu(self, vcpu: BackendVcpu) -> None:
        if self.machine is not None and self.machine.run_state.value == "running":
            raise RuntimeError("out of host threads")
        super().realize_vcpu(vcpu)


class NeverStarts(NullBackend):
    """Breaks *vcpu-started*: power_on never reports vcpu_started."""

    name = "broken-never-started"

    def power_on(self, vcpu: BackendVcpu, entry_point: int, args: Sequence[int]) -> None:
        own = self._own(vcpu)
        own.powered, own.entry_point, own.args = True, entry_point, tuple(args)


class StartsEarly(NullBackend):
    """Breaks *powered-off*: a realized vCPU reports vcpu_started before any power_on."""

    name = "broken-starts-early"

    def realize_vcpu(self, vcpu: BackendVcpu) -> None:
        super().realize_vcpu(vcpu)
        assert self.machine is not None
        self.machine.vcpu_started(vcpu.slot.index)


class CloseKeepsVcpus(NullBackend):
    """Breaks *close-frees*: close() forgets to drop the vCPUs."""

    name = "broken-close-keeps-vcpus"

    def close(self) -> None:
        pass


class StatsGrow(NullBackend):
    """Breaks *stats-keys*: a cumulative count under a name that says it is current."""

    name = "broken-stats-grow"

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        stats["realizations"] = stats.pop("total_realizations")
        return stats


class IgnoresUnknownOptions(NullBackend):
    """Breaks *options*: an option it does not know is silently ignored."""

    name = "broken-ignores-options"

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        known = {k: v for k, v in (options or {}).items() if k == "defer-start"}
        super().__init__(known)


class SharesVcpus(NullBackend):
    """Breaks *instances*: vCPU objects of secondary slots are cached across backend
    instances (so two machines park, and may plug, the very same object)."""

    name = "broken-shares-vcpus"
    _cache: ClassVar[dict[int, Any]] = {}

    def create_vcpu(self, slot: CpuSlot) -> Any:
        if slot.index == 0:
            return super().create_vcpu(slot)
        vcpu = SharesVcpus._cache.get(slot.index)
        if vcpu is None:
            vcpu = SharesVcpus._cache[slot.index] = super().create_vcpu(slot)
        self.vcpus[slot.index] = vcpu
        return vcpu


BROKEN: dict[str, tuple[type[AcceleratorBackend], str, str]] = {
    # name: (class, suite test to run (-k), the rule's words expected in the failure)
    "threaded-ok": (Threaded, "", ""),
    BlockingPowerOff.name: (BlockingPowerOff, "test_power_off_does_not_block",
                            "contract: power_off, kick and power_on never block"),
    LeaksVcpus.name: (LeaksVcpus, "test_a_vcpu_is_created_on_plug_and_freed_on_eject",
                      "contract: destroy_vcpu frees the vCPU"),
    RaisesRuntimeError.name: (RaisesRuntimeError, "test_plug_then_unplug_round_trip",
                              "contract: realize_vcpu must raise BackendError having undone "
                              "its partial work"),
    NeverStarts.name: (NeverStarts, "test_power_on_leads_to_vcpu_started",
                       "contract: power_on must lead to VirtMachine.vcpu_started(index)"),
    StartsEarly.name: (StartsEarly, "test_a_realized_cpu_runs_nothing_until_power_on",
                       "contract: realize_vcpu leaves the vCPU reset and powered off"),
    CloseKeepsVcpus.name: (CloseKeepsVcpus, "test_shutdown_frees_everything_the_backend_made",
                           "contract: close must free every vCPU"),
    StatsGrow.name: (StatsGrow, "test_stats_keys_follow_the_rule",
                     "contract: stats keys named total_* or peak* are cumulative"),
    IgnoresUnknownOptions.name: (IgnoresUnknownOptions, "test_an_unknown_option",
                                 "contract: the constructor raises ConfigError"),
    SharesVcpus.name: (SharesVcpus, "test_two_machines_on_the_backend_share_nothing",
                       "contract: a backend instance serves one machine"),
    HoldsOnToTheLock.name: (HoldsOnToTheLock, "test_unrealize_on_eject_does_not_deadlock",
                            "contract: unrealize_vcpu, called on eject with the machine lock "
                            "held, must not wait"),
    WaitsForTheThread.name: (WaitsForTheThread, "test_power_off_with_the_lock_held",
                             "contract: power_off called with the machine lock held must not "
                             "wait for the vCPU thread"),
    LeavesThreadRunning.name: (LeavesThreadRunning, "test_unrealize_ends_the_vcpu_thread",
                               "contract: unrealize_vcpu releases the vCPU's host resources"),
}
"""Every backend here: entry-point name -> (class, suite test, expected rule text)."""
