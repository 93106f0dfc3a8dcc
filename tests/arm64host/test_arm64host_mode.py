"""Where a command runs: directly exactly on arm64 with a usable /dev/kvm."""

from __future__ import annotations

import pytest

from arm64host.errors import Arm64HostError
from arm64host.mode import Mode, choose_mode


@pytest.mark.parametrize(("machine", "kvm", "expected"), [
    ("aarch64", True, Mode.DIRECT),
    ("arm64", True, Mode.DIRECT),
    ("aarch64", False, Mode.EMULATED),
    ("x86_64", True, Mode.EMULATED),
    ("x86_64", False, Mode.EMULATED),
])
def test_auto(machine: str, kvm: bool, expected: Mode) -> None:
    assert choose_mode("auto", machine, kvm) is expected


def test_emulated_can_be_forced_on_an_arm64_kvm_host() -> None:
    assert choose_mode("emulated", "aarch64", True) is Mode.EMULATED


@pytest.mark.parametrize(("machine", "kvm", "why"), [
    ("x86_64", True, "this host is x86_64, not arm64"),
    ("aarch64", False, "/dev/kvm is missing or not readable and writable"),
])
def test_direct_where_it_cannot_work_says_why(machine: str, kvm: bool, why: str) -> None:
    with pytest.raises(Arm64HostError, match=why):
        choose_mode("direct", machine, kvm)


def test_an_unknown_mode_lists_the_valid_ones() -> None:
    with pytest.raises(Arm64HostError, match="valid: auto, emulated, direct"):
        choose_mode("native", "aarch64", True)
