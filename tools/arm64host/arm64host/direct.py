"""Running a command directly on this machine (an arm64 host with a usable /dev/kvm).

The command's stdout and stderr are merged and passed on as they come, like
the emulated host's console, and the run is bounded by the same timeout. A
program that cannot be started gets the shell's statuses (127 not found, 126
not executable), as the emulated host's ``env`` reports them, so callers see
the same results in both modes.
"""

from __future__ import annotations

import codecs
import os
import selectors
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, TextIO

from arm64host.errors import GuestFailure

NOT_FOUND: Final = 127
NOT_EXECUTABLE: Final = 126
_KILL_WAIT_S: Final = 30.0


def run_directly(argv: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float,
                 output: TextIO | None) -> tuple[int, float]:
    """Run ``argv``; return its exit status and the seconds it took.

    Raises :class:`GuestFailure` (after killing it) if it runs past ``timeout``.
    """
    start = time.monotonic()
    try:
        proc = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as exc:
        if output is not None:
            output.write(f"{argv[0]}: {exc.strerror}\n")
        return (NOT_FOUND if isinstance(exc, FileNotFoundError) else NOT_EXECUTABLE), 0.0
    try:
        _pass_output(proc, output, start + timeout)
    except subprocess.TimeoutExpired as exc:
        raise GuestFailure(f"the command did not finish within {timeout:.0f} s; killed") from exc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=_KILL_WAIT_S)
        assert proc.stdout is not None
        proc.stdout.close()
    return proc.returncode, time.monotonic() - start


def _pass_output(proc: subprocess.Popen[bytes], output: TextIO | None, deadline: float) -> None:
    """Pass ``proc``'s output on until it exits; TimeoutExpired past ``deadline``."""
    assert proc.stdout is not None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    fd = proc.stdout.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(proc.args, 0)
            if not selector.select(timeout=min(remaining, 1.0)):
                continue
            data = os.read(fd, 65536)
            text = decoder.decode(data, final=not data)
            if output is not None and text:
                output.write(text)
                output.flush()
            if not data:
                break
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise subprocess.TimeoutExpired(proc.args, 0)
    proc.wait(timeout=remaining)
