"""pytest plugin shipped with vcpuhp-core: run the conformance suite on a backend.

It loads itself (``pytest11`` entry point). A backend's test package needs
one file::

    # test_conformance.py
    from vcpuhp.testing.suite import *  # noqa: F403

and ``pytest --vcpuhp-backend=mybackend``. Options:

``--vcpuhp-backend NAME[,key=value...]``
    the backend under test, with its options. Required: collecting a suite
    test without it is a usage error (never a silent default).
``--vcpuhp-timeout-scale X``
    multiply every settle timeout (default 1, or ``$VCPUHP_TIMEOUT_SCALE``):
    10-50 for a backend inside an emulated host.
``--vcpuhp-cpu MODEL``
    the CPU model of every suite machine (default ``max``; ``host`` for kvm).
``--vcpuhp-plugin NAME[,key=value...]``
    load this installed plugin into every suite machine; by default the
    suite's machines load no plugin at all, so a policy plugin installed
    beside the backend cannot change what the suite sees.

Fixtures a backend's ``conftest.py`` may override: ``vcpuhp_backend_options``
(options for every suite machine), ``vcpuhp_machine_options`` (other
``MachineConfig.build`` arguments, such as ``cpu``), ``vcpuhp_plugins``
(plugin objects every suite machine registers), ``vcpuhp_timeouts``.

Capabilities: ``@pytest.mark.requires("parks_vcpus")`` (or
``requires(parks_vcpus=False)``) on a test that needs the backend to have (or
lack) a capability. On a backend that does not match, the test still runs,
as a *strict* xfail with the reason: a gap is reported as a gap, and a
backend that passes anyway is reported too (XPASS(strict) fails the run).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from vcpuhp.backend import AcceleratorBackend, BackendCapabilities
from vcpuhp.config import MachineConfig
from vcpuhp.errors import VcpuhpError
from vcpuhp.plugin_settings import PluginSettings, parse_plugin_option
from vcpuhp.plugins import PluginManager
from vcpuhp.testing.guest import quiet_guest_image
from vcpuhp.testing.probe import ProbedMachine, probe_of, probed
from vcpuhp.testing.rig import GuestKind, Rig, Timeouts

SUITE_FIXTURE: Final = "vcpuhp_backend"
"""Every suite test depends on this fixture; it is how the plugin recognises them."""
_GAP: Final = pytest.StashKey[str]()


@dataclass(frozen=True)
class BackendUnderTest:
    """The backend the suite runs on (``--vcpuhp-backend``)."""

    name: str
    cls: type[AcceleratorBackend]
    options: Mapping[str, str]

    @property
    def capabilities(self) -> BackendCapabilities:
        """What it declares it can do."""
        return self.cls.capabilities


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vcpuhp", "vcpuhp backend conformance suite")
    group.addoption("--vcpuhp-backend", default=None, metavar="NAME[,key=value...]",
                    help="accelerator backend the vcpuhp suite runs on (entry-point name and "
                         "options); required for the suite")
    group.addoption("--vcpuhp-timeout-scale", default=None, type=float, metavar="X",
                    help="multiply the suite's settle timeouts (default 1, or "
                         "$VCPUHP_TIMEOUT_SCALE); 10-50 inside an emulated host")
    group.addoption("--vcpuhp-cpu", default="max", metavar="MODEL",
                    help="CPU model of the suite's machines (default max; kvm: host)")
    group.addoption("--vcpuhp-plugin", action="append", default=[],
                    metavar="NAME[,key=value...]",
                    help="load this installed vcpuhp plugin into the suite's machines "
                         "(by default they load none)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires(*capabilities, **capability_values): the backend capabilities a test needs; "
        "on a backend without them the test is a strict xfail",
    )


def _parse_backend(text: str) -> tuple[str, dict[str, str]]:
    name, *pairs = text.split(",")
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise pytest.UsageError(f"--vcpuhp-backend: {pair!r} is not key=value")
        options[key] = value
    return name, options


def _plugin_settings(config: pytest.Config) -> PluginSettings:
    enable: dict[str, dict[str, str]] = {}
    for text in config.getoption("--vcpuhp-plugin"):
        try:
            name, options = parse_plugin_option(text)
        except VcpuhpError as exc:
            raise pytest.UsageError(str(exc)) from None
        enable.setdefault(name, {}).update(options)
    return PluginSettings(autoload=False, enable=enable)


def _resolve_backend(config: pytest.Config) -> BackendUnderTest:
    text = config.getoption("--vcpuhp-backend")
    discovery = PluginManager(settings=_plugin_settings(config))
    if not text:
        installed = ", ".join(discovery.backends.names()) or "none"
        raise pytest.UsageError(
            "the vcpuhp conformance suite needs the backend to test: "
            f"pytest --vcpuhp-backend=NAME (installed backends: {installed})"
        )
    name, options = _parse_backend(str(text))
    try:
        cls = discovery.backends.get(name)
        # Viability and options, checked as a user's --accel is:
        discovery.backends.create(name, options).close()
    except VcpuhpError as exc:
        raise pytest.UsageError(f"--vcpuhp-backend={text}: {exc}") from None
    return BackendUnderTest(name, cls, options)


def _gap(item: pytest.Item, capabilities: BackendCapabilities) -> str:
    marker = item.get_closest_marker("requires")
    if marker is None:
        return ""
    have = capabilities.as_dict()
    wanted = {str(name): True for name in marker.args}
    wanted.update({str(k): bool(v) for k, v in marker.kwargs.items()})
    unknown = sorted(set(wanted) - set(have))
    if unknown:
        raise pytest.UsageError(f"{item.nodeid}: unknown capability {unknown[0]!r}; "
                                f"valid: {', '.join(have)}")
    missing = [f"{name}={value}" for name, value in wanted.items() if have[name] != value]
    return ", ".join(missing)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    suite = [i for i in items if SUITE_FIXTURE in getattr(i, "fixturenames", ())]
    if not suite:
        return
    backend = _resolve_backend(config)
    config.stash[_BACKEND] = backend
    for item in suite:
        gap = _gap(item, backend.capabilities)
        if gap:
            item.stash[_GAP] = gap
            item.add_marker(pytest.mark.xfail(
                strict=True, reason=f"backend {backend.name!r} does not have {gap}"))


_BACKEND: Final = pytest.StashKey[BackendUnderTest]()


@pytest.fixture(scope="session")
def vcpuhp_backend(request: pytest.FixtureRequest) -> BackendUnderTest:
    """The backend under test (``--vcpuhp-backend``)."""
    backend = request.config.stash.get(_BACKEND, None)
    if backend is None:
        backend = _resolve_backend(request.config)
        request.config.stash[_BACKEND] = backend
    return backend


@pytest.fixture(scope="session")
def backend_name(vcpuhp_backend: BackendUnderTest) -> str:
    """The name of the backend under test."""
    return vcpuhp_backend.name


@pytest.fixture
def vcpuhp_backend_options(vcpuhp_backend: BackendUnderTest) -> Mapping[str, str]:
    """Options every suite machine passes to the backend (override to add your own)."""
    return vcpuhp_backend.options


@pytest.fixture
def vcpuhp_machine_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """``MachineConfig.build`` arguments every suite machine gets (``--vcpuhp-cpu``)."""
    return {"cpu": str(request.config.getoption("--vcpuhp-cpu"))}


@pytest.fixture
def vcpuhp_plugins() -> list[object]:
    """Plugin objects every suite machine registers (none; override to add some)."""
    return []


@pytest.fixture
def vcpuhp_timeouts(request: pytest.FixtureRequest) -> Timeouts:
    """The suite's timeouts (``--vcpuhp-timeout-scale``), short for a capability gap."""
    scale = request.config.getoption("--vcpuhp-timeout-scale")
    if scale is None:
        scale = float(os.environ.get("VCPUHP_TIMEOUT_SCALE", "1") or 1)
    if scale <= 0:
        raise pytest.UsageError(f"--vcpuhp-timeout-scale must be positive, not {scale}")
    return Timeouts(float(scale), gap=bool(request.node.stash.get(_GAP, "")))


@pytest.fixture
def vcpuhp_plugin_manager(request: pytest.FixtureRequest,
                          vcpuhp_plugins: list[object]) -> Callable[[], PluginManager]:
    """Factory of the plugin manager a suite machine gets: the requested plugins only."""

    def make() -> PluginManager:
        return PluginManager(vcpuhp_plugins, settings=_plugin_settings(request.config))

    return make


@pytest.fixture
def plugin_manager(vcpuhp_plugin_manager: Callable[[], PluginManager]) -> PluginManager:
    """A plugin manager as the suite's machines get it."""
    return vcpuhp_plugin_manager()


def _build(vcpuhp_backend: BackendUnderTest, options: Mapping[str, str],
           plugin_manager: Callable[[], PluginManager], smp: str,
           kwargs: dict[str, Any]) -> ProbedMachine:
    config = MachineConfig.build(smp, accel=vcpuhp_backend.name,
                                 backend_options=dict(options), **kwargs)
    backend = probed(vcpuhp_backend.cls)(dict(options))
    return ProbedMachine(config, backend=backend, plugins=plugin_manager())


@pytest.fixture
def vcpuhp_machine(
    vcpuhp_backend: BackendUnderTest,
    vcpuhp_backend_options: Mapping[str, str],
    vcpuhp_plugin_manager: Callable[[], PluginManager],
    vcpuhp_machine_options: dict[str, Any],
) -> Iterator[Callable[..., ProbedMachine]]:
    """Factory: ``vcpuhp_machine("cpus=2,maxcpus=4", **config)`` -> an *unrealized*
    machine on a probed backend (for tests of realize itself). Shut down at teardown."""
    made: list[ProbedMachine] = []

    def factory(smp: str = "cpus=1,maxcpus=4", **kwargs: Any) -> ProbedMachine:
        machine = _build(vcpuhp_backend, vcpuhp_backend_options, vcpuhp_plugin_manager, smp,
                         {**vcpuhp_machine_options, **kwargs})
        made.append(machine)
        return machine

    yield factory
    for machine in made:
        machine.shutdown()


@pytest.fixture
def vcpuhp_rig(
    vcpuhp_backend: BackendUnderTest,
    vcpuhp_backend_options: Mapping[str, str],
    vcpuhp_plugin_manager: Callable[[], PluginManager],
    vcpuhp_timeouts: Timeouts,
    vcpuhp_machine_options: dict[str, Any],
    tmp_path: Path,
) -> Iterator[Callable[..., Rig]]:
    """Factory: ``vcpuhp_rig("cpus=2,maxcpus=4", guest="cooperative", maxcpus=2)`` -> a
    :class:`~vcpuhp.testing.rig.Rig` whose guest has booted. Closed at teardown."""
    made: list[Rig] = []

    def factory(smp: str = "cpus=2,maxcpus=4", *, guest: GuestKind = "cooperative",
                maxcpus: int | None = None, **kwargs: Any) -> Rig:
        if vcpuhp_backend.capabilities.executes_guest_code:
            if guest == "scripted":
                kwargs.setdefault("kernel", quiet_guest_image(tmp_path))
            elif maxcpus is not None:
                kwargs.setdefault("guest_cmdline", f"maxcpus={maxcpus}")
        machine = _build(vcpuhp_backend, vcpuhp_backend_options, vcpuhp_plugin_manager, smp,
                         {**vcpuhp_machine_options, **kwargs})
        rig = Rig(machine, probe_of(machine.backend), vcpuhp_timeouts, guest, maxcpus)
        made.append(rig)
        machine.realize()
        rig.start_guest()
        return rig

    yield factory
    for rig in made:
        rig.close()


@pytest.fixture
def make_machine(vcpuhp_rig: Callable[..., Rig]) -> Callable[..., ProbedMachine]:
    """Factory: ``make_machine("cpus=4,maxcpus=6", **config)`` -> a realized machine whose
    guest (played by the test) has not done anything yet."""

    def factory(smp: str = "cpus=1,maxcpus=4", **kwargs: Any) -> ProbedMachine:
        return vcpuhp_rig(smp, guest="scripted", **kwargs).machine

    return factory
