"""The kvm tests: the ABI and unit tests run everywhere; the others only on an arm64 KVM host.

``test_kvm_native.py`` (the native layer), ``test_kvm_backend.py`` (the
backend under the machine, with small hand-assembled guests) and
``test_kvm_guest.py`` (the bundled guest) need a real arm64 ``/dev/kvm``,
which an x86 host never has, so they are not collected unless the run
targets the kvm backend (``pytest --vcpuhp-backend=kvm tests/kvm``, as inside
the emulated arm64 host). When they are collected, a host that cannot run
KVM fails them with the probe's reason: they are never skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guest_scenarios import machine_factory
from selected_backend import selected_backend
from vcpuhp import VirtMachine
from vcpuhp_kvm import HostSupport, Kvm, install_kick_handler, probe

NATIVE_TESTS = {"test_kvm_native.py", "test_kvm_backend.py", "test_kvm_guest.py"}


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name in NATIVE_TESTS:
        return selected_backend(config) != "kvm"
    return None


@pytest.fixture(scope="session")
def kvm_host() -> HostSupport:
    """This host's KVM, which must be usable (the test fails with the reason otherwise)."""
    support = probe()
    if not support.viability.viable:
        pytest.fail(f"the kvm native tests need a usable arm64 KVM: {support.viability.reason}")
    install_kick_handler()
    return support


@pytest.fixture
def kvm(kvm_host: HostSupport) -> Iterator[Kvm]:
    """An open ``/dev/kvm``."""
    with Kvm() as handle:
        yield handle


@pytest.fixture
def kvm_machine(kvm_host: HostSupport) -> Iterator[Callable[..., VirtMachine]]:
    """Factory: ``kvm_machine("cpus=4,maxcpus=6", guest_cmdline=...)`` -> realized kvm machine
    (``realize=False``: not yet).

    CPU model ``host``. Every machine is shut down at teardown, and the test
    fails if the backend kept a vCPU fd, a thread, the vGIC or the VM.
    """
    with machine_factory("kvm", {"vcpu_fds": 0, "threads": 0, "vgic": False, "vm": False},
                         cpu="host") as make:
        yield make
