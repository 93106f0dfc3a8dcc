"""Concurrent requests from many threads."""

from __future__ import annotations

import threading
from collections.abc import Callable

from vcpuhp.errors import DeviceError
from vcpuhp.testing.resources import Resources, settle_leaks
from vcpuhp.testing.rig import Rig

RigFactory = Callable[..., Rig]


class TestConcurrency:
    """Racing ``device_add`` / ``device_del`` from threads leaves a consistent machine."""

    def test_racing_plugs_of_one_slot_have_exactly_one_winner(
        self, vcpuhp_rig: RigFactory,
    ) -> None:
        rig = vcpuhp_rig("cpus=1,maxcpus=3", guest="scripted")
        before = Resources.measure(rig.probe)
        start = threading.Barrier(6)
        won: list[str] = []
        lost: list[BaseException] = []

        def plug(device_id: str) -> None:
            start.wait()
            try:
                rig.machine.device_add(rig.machine.config.cpu_type, device_id,
                                       **{"core-id": 2})
                won.append(device_id)
            except DeviceError as exc:
                lost.append(exc)

        threads = [threading.Thread(target=plug, args=(f"r{n}",)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(rig.timeouts.settle)
        assert len(won) == 1 and len(lost) == 5, (won, lost)
        assert all("already plugged" in str(exc) for exc in lost), lost
        rig.machine.check_invariants()
        rig.guest.scan()
        rig.scripted_unplug(2)
        assert not settle_leaks(before, rig.probe)

    def test_concurrent_plug_cycles_on_every_slot_end_where_they_started(
        self, vcpuhp_rig: RigFactory,
    ) -> None:
        rig = vcpuhp_rig("cpus=1,maxcpus=5", maxcpus=1)
        before = Resources.measure(rig.probe)
        errors: list[BaseException] = []

        def cycles(index: int) -> None:
            try:
                for n in range(4):
                    rig.cycle(index, f"t{index}-{n}")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=cycles, args=(index,)) for index in range(1, 5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(4 * 2 * rig.timeouts.settle)
        assert not errors, errors
        assert rig.machine.cpu_masks().enabled == {0}
        rig.machine.check_invariants()
        problems = settle_leaks(before, rig.probe)
        assert not problems, f"after concurrent cycles: {'; '.join(problems)}"
