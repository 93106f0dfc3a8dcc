"""Fixtures for the tcg-unicorn tests: machines that execute guest code under Unicorn.

Every test module starts with ``require_unicorn()`` (``unicorn_testlib``): it
is skipped, saying why, when Unicorn or the backend cannot be imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from guest_scenarios import machine_factory
from vcpuhp import VirtMachine


@pytest.fixture
def unicorn_machine() -> Iterator[Callable[..., VirtMachine]]:
    """Factory: ``unicorn_machine("cpus=4,maxcpus=6", guest_cmdline=...)`` -> realized machine.

    Every machine is shut down at teardown, and the test fails if the backend
    leaked an engine, a thread or a translation context.
    """
    with machine_factory("tcg-unicorn",
                         {"engines": 0, "threads": 0, "contexts_registered": 0}) as make:
        yield make
