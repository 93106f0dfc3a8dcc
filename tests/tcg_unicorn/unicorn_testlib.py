"""Helpers shared by the tcg-unicorn tests."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from vcpuhp.machine import VirtMachine

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
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.002)


def console_has(machine: VirtMachine, line: str) -> Callable[[], bool]:
    """A predicate: the guest printed exactly ``line``."""
    return lambda: line in machine.console


def read_u64(machine: VirtMachine, addr: int) -> int:
    """A guest u64 at ``addr``."""
    assert machine.memory is not None
    return machine.memory.read_int(addr, 8)


def read_i64(machine: VirtMachine, addr: int) -> int:
    """A guest i64 at ``addr``."""
    value = read_u64(machine, addr)
    return value - (1 << 64) if value >> 63 else value
