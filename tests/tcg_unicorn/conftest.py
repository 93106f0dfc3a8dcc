"""Fixtures for the tcg-unicorn tests: machines that execute guest code under Unicorn.

Every test module starts with ``require_unicorn()`` (``unicorn_testlib``): it
is skipped, saying why, when Unicorn or the backend cannot be imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from vcpuhp import MachineConfig, VirtMachine


@pytest.fixture
def unicorn_machine() -> Iterator[Callable[..., VirtMachine]]:
    """Factory: ``unicorn_machine("cpus=4,maxcpus=6", guest_cmdline=...)`` -> realized machine.

    Every machine is shut down at teardown, and the test fails if the backend
    leaked an engine, a thread or a translation context.
    """
    made: list[VirtMachine] = []

    def make(smp: str = "cpus=2,maxcpus=4", **kwargs: object) -> VirtMachine:
        config = MachineConfig.build(smp, accel="tcg-unicorn", **kwargs)  # type: ignore[arg-type]
        machine = VirtMachine(config)
        made.append(machine)
        machine.realize()
        return machine

    yield make
    for machine in made:
        machine.shutdown()
        stats = machine.backend.stats()
        assert (stats["engines"], stats["threads"]) == (0, 0), stats
        assert stats["contexts_registered"] == 0, stats
