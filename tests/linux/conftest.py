"""Linux guest tests: a Debian arm64 kernel with the test userland, on an executing backend.

The guest tests (:data:`GUEST_TESTS`) are collected only for a backend that
executes guest code (``--vcpuhp-backend=kvm`` inside the emulated arm64 host,
``tcg-unicorn`` on any host, with ``exec=serial``: see
:data:`linux_testlib.LINUX_ACCEL`); the userland's unit tests run everywhere. The kernel,
busybox and evdev come from ``VCPUHP_TEST_KERNEL`` / ``_BUSYBOX`` / ``_EVDEV``
(set inside the emulated host), else from the arm64host tool's cache
(``python3 tools/arm64host/run.py paths`` fetches them; the tox envs run it
first). Missing files fail the tests: they are never skipped.

One guest per module boots and serves every test of it (a boot costs tens of
seconds under emulation): the ``seed_linux`` fixture hands it out only at the
masks of boot, and puts it back there after each test; a guest that cannot be
put back is shut down and the next test boots a new one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from linux_testlib import ARTIFACTS, CONSOLE_LOGS, ENV_FILES, LinuxFiles, LinuxGuest

from selected_backend import selected_backend
from vcpuhp.plugins import PluginManager
from vcpuhp.testing.linux_userland import build_initramfs, read_module

REPO: Final = Path(__file__).resolve().parents[2]
EXECUTING_BACKENDS: Final = ("kvm", "tcg-unicorn")
GUEST_TESTS: Final = ("test_linux_hotplug.py", "test_linux_run.py", "test_linux_demo.py")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name in GUEST_TESTS:
        return selected_backend(config) not in EXECUTING_BACKENDS
    return None


def _from_arm64host() -> LinuxFiles:
    sys.path.insert(0, str(REPO / "tools" / "arm64host"))
    try:
        from arm64host import Arm64Host
    finally:
        sys.path.pop(0)
    l2 = Arm64Host().l2_files()
    return LinuxFiles(kernel=l2.vmlinuz, busybox=l2.busybox, evdev=l2.evdev)


@pytest.fixture(scope="session")
def linux_files() -> LinuxFiles:
    """The kernel, busybox and evdev (see the module docstring)."""
    named = {field: os.environ.get(variable) for field, variable in ENV_FILES.items()}
    if all(named.values()):
        files = LinuxFiles(**{field: Path(str(path)) for field, path in named.items()})
    else:
        files = _from_arm64host()
    for path in (files.kernel, files.busybox, files.evdev):
        if not path.is_file():
            pytest.fail(f"{path} is missing: run python3 tools/arm64host/run.py paths")
    return files


@pytest.fixture(scope="session")
def userland_initrd(linux_files: LinuxFiles, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test userland's initramfs, with the kernel's evdev."""
    path = tmp_path_factory.mktemp("userland") / "initrd.cpio"
    path.write_bytes(build_initramfs(linux_files.busybox.read_bytes(),
                                     [read_module(linux_files.evdev)]))
    return path


@pytest.fixture(scope="session")
def artifacts(request: pytest.FixtureRequest) -> Path:
    """Where the guests' console logs go (gitignored; the 9p share brings them back)."""
    return Path(request.config.rootpath) / ARTIFACTS


@pytest.fixture(scope="session")
def backend_cpu(backend_name: str) -> str:
    """The CPU model of the backend's machines."""
    return PluginManager().backends.preferred_cpu_model(backend_name)


class GuestSlot:
    """The module's one guest, booted on first use and retired when it cannot be restored.

    A boot that fails is not tried again: every later test fails with its error
    at once (a boot that hangs costs its whole timeout).
    """

    def __init__(self, backend: str, smp: str, kernel: Path, initrd: Path, name: str,
                 artifacts: Path) -> None:
        self._args = (backend, smp, kernel, initrd, name, artifacts)
        self.guest: LinuxGuest | None = None
        self.boots = 0
        self.boot_failure: BaseException | None = None

    def get(self) -> LinuxGuest:
        if self.boot_failure is not None:
            raise RuntimeError(f"the module's Linux guest failed to boot: "
                               f"{self.boot_failure}") from self.boot_failure
        if self.guest is None:
            backend, smp, kernel, initrd, name, artifacts = self._args
            self.boots += 1
            suffix = name if self.boots == 1 else f"{name}-boot{self.boots}"
            self.guest = LinuxGuest(backend, smp, kernel, initrd, suffix, artifacts)
            try:
                self.guest.boot()
            except Exception as exc:
                self.boot_failure = exc
                self.retire()
                raise
        return self.guest

    def retire(self) -> None:
        if self.guest is not None:
            guest, self.guest = self.guest, None
            guest.close()


@pytest.fixture(scope="module")
def _seed_slot(backend_name: str, linux_files: LinuxFiles, userland_initrd: Path,
               artifacts: Path) -> Iterator[GuestSlot]:
    slot = GuestSlot(backend_name, "cpus=4,maxcpus=6", linux_files.kernel, userland_initrd,
                     "seed", artifacts)
    yield slot
    slot.retire()


@pytest.fixture
def seed_linux(_seed_slot: GuestSlot) -> Iterator[LinuxGuest]:
    """Linux booted with ``cpus=4,maxcpus=6`` and guest ``maxcpus=2``, at the masks of boot."""
    guest = _seed_slot.get()
    yield guest
    try:
        guest.restore()
    except BaseException:
        _seed_slot.retire()
        raise


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if CONSOLE_LOGS:
        terminalreporter.write_sep("-", "Linux guest console logs (test artifacts)")
        for log in CONSOLE_LOGS:
            terminalreporter.write_line(str(log))
