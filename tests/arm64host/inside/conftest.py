"""tests/arm64host/inside runs only in an arm64 KVM host; anywhere else it is a usage error.

A directory walk (``pytest tests``) never enters it off such a host (see the
parent conftest); naming it explicitly there stops the run with this message
instead of a list of failures about a missing /dev/kvm.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from arm64host.hosttools import host_machine, kvm_usable
from arm64host.mode import is_arm64_kvm_host

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = any(item.path.is_relative_to(HERE) for item in items)
    if not ours or is_arm64_kvm_host(host_machine(), kvm_usable()):
        return
    raise pytest.UsageError(
        "tests/arm64host/inside needs an arm64 host with a usable /dev/kvm; on this machine "
        "run it in the emulated one: python3 tools/arm64host/run.py run -- "
        "python3 -m pytest tests/arm64host/inside")
