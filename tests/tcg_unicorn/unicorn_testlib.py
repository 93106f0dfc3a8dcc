"""Helpers shared by the tcg-unicorn tests (the guest-reading ones are ``guest_scenarios``')."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import guest_scenarios
from guest_scenarios import console_has, read_i64, read_u64

SKIP_REASON = ("tcg-unicorn tests need the unicorn module and the backend: "
               "pip install -e backends/tcg-unicorn (unicorn==2.1.4)")


def require_unicorn() -> None:
    """Skip the calling test module unless Unicorn and the backend import."""
    pytest.importorskip("unicorn", reason=SKIP_REASON)
    pytest.importorskip("vcpuhp_tcg_unicorn", reason=SKIP_REASON)


SETTLE = 30.0
"""Seconds a test waits for the guest before it fails."""


def wait_until(predicate: Callable[[], bool], timeout: float = SETTLE, what: str = "") -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    guest_scenarios.wait_until(predicate, timeout, what)


__all__ = ["SETTLE", "SKIP_REASON", "console_has", "read_i64", "read_u64", "require_unicorn",
           "wait_until"]
