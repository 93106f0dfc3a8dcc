"""Real ``qemu-system-aarch64 -M virt`` for comparison tests: start it, talk QMP, stop it."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

QEMU_SECONDS = 60.0
"""Bound on every wait for QEMU (never reached when things work)."""
BASE_COMMAND = ("-M", "virt", "-cpu", "max", "-m", "256M", "-nographic", "-nic", "none",
                "-monitor", "none")


class Qmp:
    """A minimal blocking QMP client: commands in order; events are kept in :attr:`events`."""

    def __init__(self, path: Path) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(QEMU_SECONDS)
        self._sock.connect(str(path))
        self._stream = self._sock.makefile("rwb")
        self.events: list[str] = []
        json.loads(self._stream.readline())  # the greeting
        self.execute("qmp_capabilities")

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run ``command``; its ``return`` value (an error fails the test)."""
        message = {"execute": command, **({"arguments": arguments} if arguments else {})}
        self._stream.write(json.dumps(message).encode() + b"\n")
        self._stream.flush()
        while True:
            reply = json.loads(self._stream.readline())
            if "event" in reply:
                self.events.append(reply["event"])
                continue
            if "error" in reply:
                raise AssertionError(f"QMP {command}: {reply['error']}")
            return reply["return"]

    def close(self) -> None:
        self._stream.close()
        self._sock.close()


@contextlib.contextmanager
def qemu(tmp_path: Path, args: Sequence[str]) -> Iterator[tuple[subprocess.Popen[bytes], Qmp]]:
    """Run ``qemu-system-aarch64 BASE_COMMAND ARGS`` with a QMP socket; killed on exit.

    The process's stdout (the guest's serial console) is a pipe the caller may read
    after QEMU exits.
    """
    binary = shutil.which("qemu-system-aarch64")
    assert binary is not None
    path = tmp_path / "qmp.sock"
    command = [binary, *BASE_COMMAND, "-qmp", f"unix:{path},server=on,wait=off", *args]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + QEMU_SECONDS
        while True:  # the socket file appears before QEMU listens on it
            assert process.poll() is None, f"QEMU exited: {process.communicate()[1]!r}"
            assert time.monotonic() < deadline, "QEMU's QMP socket never accepted"
            try:
                qmp = Qmp(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.02)
        try:
            yield process, qmp
        finally:
            qmp.close()
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=QEMU_SECONDS)
