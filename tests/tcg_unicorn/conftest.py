"""Fixtures for the tcg-unicorn tests: machines that execute guest code under Unicorn.

These tests are collected only when the run targets the backend
(``pytest --vcpuhp-backend=tcg-unicorn tests/tcg_unicorn``, ``tox -e
tcg-unicorn``), never skipped elsewhere. Every test module starts with
``require_unicorn()`` (``unicorn_testlib``): when Unicorn or the backend cannot
be imported there, the module fails to collect, saying what to install.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guest_scenarios import machine_factory
from selected_backend import selected_backend
from vcpuhp import VirtMachine


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name.startswith("test_") and collection_path.suffix == ".py":
        return selected_backend(config) != "tcg-unicorn"
    return None


@pytest.fixture
def unicorn_machine() -> Iterator[Callable[..., VirtMachine]]:
    """Factory: ``unicorn_machine("cpus=4,maxcpus=6", guest_cmdline=...)`` -> realized machine.

    Every machine is shut down at teardown, and the test fails if the backend
    leaked an engine, a thread or a translation context.
    """
    with machine_factory("tcg-unicorn",
                         {"engines": 0, "threads": 0, "contexts_registered": 0}) as make:
        yield make
