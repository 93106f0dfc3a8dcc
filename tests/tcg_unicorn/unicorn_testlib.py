"""Helpers shared by the tcg-unicorn tests (the guest-reading ones are ``guest_scenarios``')."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pytest

import guest_scenarios
from guest_scenarios import console_has, read_i64, read_u64

MISSING_REASON = ("tcg-unicorn tests need the unicorn module and the backend: "
                  "pip install -e backends/tcg-unicorn (unicorn==2.1.4)")


def require_unicorn() -> None:
    """Fail the calling test module's collection unless Unicorn and the backend import.

    The module is collected only for a run that targets tcg-unicorn
    (``conftest.py``), where a missing Unicorn is an installation error, not a
    reason to skip.
    """
    for module in ("unicorn", "vcpuhp_tcg_unicorn"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            pytest.fail(f"{MISSING_REASON}: {exc}", pytrace=False)


SETTLE = 30.0
"""Seconds a test waits for the guest before it fails."""


def wait_until(predicate: Callable[[], bool], timeout: float = SETTLE, what: str = "") -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    guest_scenarios.wait_until(predicate, timeout, what)


__all__ = [
    "MISSING_REASON",
    "SETTLE",
    "console_has",
    "read_i64",
    "read_u64",
    "require_unicorn",
    "wait_until",
]
