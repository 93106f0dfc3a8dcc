"""The ``vcpuhp`` command in a child process, for the tests of the CLI and of its servers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, TypeVar

VCPUHP: Final = (sys.executable, "-m", "vcpuhp.cli")
"""How the tests start the command (the installed ``vcpuhp`` script may be elsewhere)."""
TIMEOUT: Final = 120.0
"""Seconds a command may take before the test fails."""
WAIT: Final = 30.0
"""Seconds a server may take to listen, by default."""
_POLL: Final = 0.05
_T = TypeVar("_T")

Serving = Callable[..., tuple[subprocess.Popen[str], Path]]
"""The ``vcpuhp_serving`` fixture: ``serve("qmp" | "qtest", *run_args)`` -> (process, socket)."""


def run_vcpuhp(*args: str, stdin: str = "", env: Mapping[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    """``vcpuhp ARGS`` to its end, ``stdin`` as its input, its output captured."""
    return subprocess.run([*VCPUHP, *args], input=stdin, capture_output=True, text=True,
                          timeout=TIMEOUT, env=env, check=False)


def start_vcpuhp(*args: str, stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[str]:
    """``vcpuhp ARGS`` running, stdout and stderr on pipes (``stdin`` closed by default)."""
    return subprocess.Popen([*VCPUHP, *args], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_socket(path: Path, proc: subprocess.Popen[str], timeout: float = WAIT) -> None:
    """Wait until ``proc`` created the socket ``path``; fail if it exits first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"vcpuhp exited early: {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(_POLL)


def connect_when_listening(connect: Callable[[], _T], proc: subprocess.Popen[str] | None = None,
                           timeout: float = WAIT) -> _T:
    """``connect()`` once the server listens: a starting server's socket may not exist yet, or
    exist (a stale one) before it accepts. Fails if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return connect()
        except (FileNotFoundError, ConnectionRefusedError):
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"never listened: {proc.communicate()[1]}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(_POLL)


__all__ = [
    "TIMEOUT", "VCPUHP", "WAIT", "Serving", "connect_when_listening", "run_vcpuhp",
    "start_vcpuhp", "wait_for_socket",
]
