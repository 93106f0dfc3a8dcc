"""pytest plugin shipped with vcpuhp-core: run the conformance suite on a backend.

``pytest --vcpuhp-backend NAME`` selects the backend the ``backend_name`` and
``make_machine`` fixtures use (default: ``null``). A third-party backend's
test package needs only::

    # conftest.py
    pytest_plugins = []            # the plugin loads itself via its entry point

    # test_conformance.py
    from vcpuhp.testing.suite import *  # noqa: F403

and ``pytest --vcpuhp-backend mybackend``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vcpuhp.config import MachineConfig
from vcpuhp.machine import VirtMachine
from vcpuhp.plugins import PluginManager


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vcpuhp")
    group.addoption(
        "--vcpuhp-backend", default="null",
        help="accelerator backend the vcpuhp suite runs on (entry-point name)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires(*capabilities): skip unless the backend has these capabilities"
    )


@pytest.fixture(scope="session")
def backend_name(request: pytest.FixtureRequest) -> str:
    """The backend under test (``--vcpuhp-backend``)."""
    return str(request.config.getoption("--vcpuhp-backend"))


@pytest.fixture(scope="session")
def plugin_manager() -> PluginManager:
    """A plugin manager with the installed backends and plugins."""
    return PluginManager()


@pytest.fixture(autouse=True)
def _vcpuhp_requires(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("requires")
    if marker is None:
        return
    name = request.getfixturevalue("backend_name")
    pm = request.getfixturevalue("plugin_manager")
    caps = pm.backends.get(name).capabilities.as_dict()
    missing = [c for c in marker.args if not caps.get(c)]
    if missing:
        pytest.skip(f"backend {name!r} lacks {', '.join(missing)}")


@pytest.fixture
def make_machine(
    backend_name: str, plugin_manager: PluginManager
) -> Iterator[Callable[..., VirtMachine]]:
    """Factory: ``make_machine("cpus=4,maxcpus=6", **config)`` -> realized machine.

    Every machine it made is shut down at teardown.
    """
    made: list[VirtMachine] = []

    def factory(smp: str = "cpus=1,maxcpus=4", **kwargs: Any) -> VirtMachine:
        plugins = kwargs.pop("plugins", plugin_manager)
        accel = kwargs.pop("accel", backend_name)
        config = MachineConfig.build(smp, accel=accel, **kwargs)
        machine = VirtMachine(config, plugins=plugins)
        made.append(machine)
        machine.realize()
        return machine

    yield factory
    for machine in made:
        machine.shutdown()
