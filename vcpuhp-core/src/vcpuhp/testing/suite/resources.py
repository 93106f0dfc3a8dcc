"""Resources the suite counts itself, the stats() key rule, and the non-blocking methods."""

from __future__ import annotations

from collections.abc import Callable
from numbers import Number

from vcpuhp.backend import CUMULATIVE_STATS_PREFIXES, rule
from vcpuhp.testing.resources import Resources, settle_leaks
from vcpuhp.testing.rig import NON_BLOCKING_BOUND, Rig
from vcpuhp.vcpu import VcpuState

RigFactory = Callable[..., Rig]


def _cumulative(key: str) -> bool:
    return key.startswith(CUMULATIVE_STATS_PREFIXES)


class TestResources:
    """Plug cycles, shutdown and second machines leave nothing behind."""

    def test_plug_cycles_leave_threads_fds_and_vcpus_as_they_were(
        self, vcpuhp_rig: RigFactory,
    ) -> None:
        rig = vcpuhp_rig("cpus=2,maxcpus=4", maxcpus=2)
        rig.wait_online(frozenset({0, 1}))
        before = Resources.measure(rig.probe)
        for n in range(10):
            rig.cycle(2 + n % 2, f"cpu{n}")
        problems = settle_leaks(before, rig.probe)
        assert not problems, f"after 10 plug cycles: {'; '.join(problems)}"
        rig.machine.check_invariants()

    def test_unrealize_ends_the_vcpu_thread_before_it_returns(
        self, vcpuhp_rig: RigFactory,
    ) -> None:
        rig = vcpuhp_rig("cpus=1,maxcpus=3", guest="scripted")
        before = Resources.measure(rig.probe)
        rig.scripted_plug(2, "c2")
        rig.scripted_unplug(2)
        after = Resources.measure(rig.probe)
        extra = {i: n for i, n in after.threads.items() if i not in before.threads}
        assert not extra, f"threads alive after eject returned: {extra}; {rule('unrealize-joins')}"

    def test_stats_keys_follow_the_rule(self, vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=2,maxcpus=4", maxcpus=2)
        rig.wait_online(frozenset({0, 1}))
        baseline = rig.machine.backend_stats()
        for n in range(6):
            rig.cycle(2 + n % 2, f"s{n}")
        after = rig.machine.backend_stats()
        assert set(after) == set(baseline), \
            f"stats keys changed: {sorted(set(after) ^ set(baseline))}; {rule('stats-keys')}"
        for key, value in after.items():
            assert isinstance(value, (Number, str)), f"stats[{key!r}] = {value!r} is not a " \
                                                      "number or string"
            if _cumulative(key):
                assert value >= baseline[key], \
                    f"cumulative stats[{key!r}] fell {baseline[key]} -> {value}; " \
                    f"{rule('stats-keys')}"
            else:
                assert value == baseline[key], \
                    f"stats[{key!r}]: {baseline[key]} -> {value} after 6 plug cycles; " \
                    f"{rule('stats-keys')}"

    def test_shutdown_frees_everything_the_backend_made(self, vcpuhp_rig: RigFactory) -> None:
        before = Resources.measure()
        rig = vcpuhp_rig("cpus=2,maxcpus=4", maxcpus=2)
        rig.plug(2, "c2")
        rig.close()
        held = {id(v.handle) for v in rig.machine.vcpus if v.handle is not None}
        leaked = [v for v in rig.probe.live_vcpus() if id(v) not in held]
        assert not leaked, (f"vCPU objects alive after shutdown, held by the backend: "
                            f"{leaked!r}; {rule('close-frees')}")
        problems = settle_leaks(before, None)
        assert not problems, f"after shutdown: {'; '.join(problems)}; {rule('close-frees')}"

    def test_two_machines_on_the_backend_share_nothing(self, vcpuhp_rig: RigFactory) -> None:
        first = vcpuhp_rig("cpus=1,maxcpus=3", maxcpus=1)
        second = vcpuhp_rig("cpus=1,maxcpus=3", maxcpus=1)
        assert first.machine.backend is not second.machine.backend
        first.plug(2, "only-in-first")
        assert second.machine.cpu_masks().enabled == {0}, rule("instances")
        shared = {id(v) for v in first.probe.live_vcpus()} & \
                 {id(v) for v in second.probe.live_vcpus()}
        assert not shared, rule("instances")
        before = Resources.measure(second.probe)
        first.close()
        second.cycle(1, "still-works")
        assert not settle_leaks(before, second.probe)


class TestNonBlocking:
    """``power_off``, ``kick`` and ``power_on`` return promptly, measured around each call."""

    @staticmethod
    def _check(rig: Rig, method: str) -> None:
        records = rig.probe.durations(method)
        assert records, f"{method} was never called"
        slow = [r for r in records if r.seconds > NON_BLOCKING_BOUND]
        assert not slow, "; ".join(
            f"{method}(cpu {r.cpu}) took {r.seconds:.2f}s (bound {NON_BLOCKING_BOUND}s)"
            for r in slow) + f"; {rule('non-blocking')}"

    def test_power_on_does_not_block(self, vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=2,maxcpus=4", guest="scripted")
        assert rig.guest.cpu_on(1) == 0
        rig.scripted_plug(2, "c2")
        self._check(rig, "power_on")

    def test_power_off_does_not_block(self, vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=2,maxcpus=4", guest="scripted")
        rig.scripted_plug(2, "c2")
        assert rig.guest.cpu_off(2) == 0
        assert rig.guest.cpu_on(1) == 0
        rig.guest.wait_online(1)
        assert rig.guest.system_reset() == 0
        rig.guest.wait_online(0)
        self._check(rig, "power_off")

    def test_kick_does_not_block(self, vcpuhp_rig: RigFactory) -> None:
        rig = vcpuhp_rig("cpus=3,maxcpus=4", guest="scripted")
        assert rig.guest.cpu_on(1) == 0
        rig.guest.wait_online(1)
        backend = rig.machine.backend
        for _ in range(3):
            for vcpu in rig.machine.vcpus:
                if vcpu.handle is not None and vcpu.state is not VcpuState.UNPLUGGED:
                    backend.kick(vcpu.handle)  # online, and powered off (CPU 2)
        self._check(rig, "kick")


