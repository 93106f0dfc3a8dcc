"""Tests of tools/arm64host, the emulated arm64 KVM host.

- ``test_*.py`` here: the tool's pure parts; run on any host (the ``null`` env).
- ``pipeline/``: runs through the tool's real API (QEMU and the built image, or
  directly on an arm64 KVM host); collected only when
  ``VCPUHP_ARM64HOST_PIPELINE=1`` (``tox -e kvm-arm64`` sets it), since the
  first run downloads ~130 MB and builds for minutes.
- ``inside/``: runs *in* an arm64 KVM host (the emulated one, or a real one);
  a directory walk enters it only there, and naming it explicitly anywhere
  else is a usage error (``inside/conftest.py``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TOOL_DIR = Path(__file__).resolve().parents[2] / "tools" / "arm64host"
if str(TOOL_DIR) not in sys.path:
    sys.path.insert(0, str(TOOL_DIR))

from arm64host.hosttools import host_machine, kvm_usable  # noqa: E402
from arm64host.mode import is_arm64_kvm_host  # noqa: E402


def on_arm64_kvm_host() -> bool:
    """Whether this process runs on arm64 with a usable /dev/kvm."""
    return is_arm64_kvm_host(host_machine(), kvm_usable())


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    here = Path(__file__).parent
    if collection_path == here / "inside":
        return None if on_arm64_kvm_host() else True
    if collection_path == here / "pipeline":
        return None if os.environ.get("VCPUHP_ARM64HOST_PIPELINE") == "1" else True
    return None
