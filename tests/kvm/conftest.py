"""The kvm tests: the ABI test runs everywhere; the native tests only on an arm64 KVM host.

``test_kvm_native.py`` needs a real arm64 ``/dev/kvm``, which an x86 host never
has, so it is not collected unless the run targets the kvm backend
(``pytest --vcpuhp-backend=kvm tests/kvm``, as inside the emulated arm64
host). When it is collected, a host that cannot run KVM fails it with the
probe's reason: it is never skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vcpuhp_kvm import HostSupport, Kvm, install_kick_handler, probe

NATIVE_TESTS = {"test_kvm_native.py"}


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name in NATIVE_TESTS:
        return bool(config.getoption("--vcpuhp-backend") != "kvm")
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
