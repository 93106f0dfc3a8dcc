"""``qmp-shell`` (shipped with qemu.qmp) runs a device_add / device_del session."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vcpuhp import VirtMachine
from vcpuhp_null import GuestDriver

from .helpers import TIMEOUT

PROMPT = "(QEMU) "


class Shell:
    """``python -m qemu.qmp.qmp_shell PATH`` with its stdout read on a thread."""

    def __init__(self, path: str, home: Path, *flags: str) -> None:
        env = {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qemu.qmp.qmp_shell", *flags, path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.transcript: list[str] = []
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def line(self) -> str:
        """The next output line with prompts stripped."""
        try:
            line = self.lines.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"qmp-shell said nothing; so far: {self.transcript}") from None
        if line is None:
            raise AssertionError(f"qmp-shell exited; transcript: {self.transcript}")
        self.transcript.append(line)
        return line.replace(PROMPT, "").strip()

    def send(self, command: str) -> None:
        """Type one line."""
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def execute(self, command: str) -> dict[str, Any]:
        """Type a command and return the JSON response it prints."""
        self.send(command)
        while True:
            text = self.line()
            if text.startswith('{"'):  # events print as Python dicts: {'event': ...}
                response: dict[str, Any] = json.loads(text)
                return response

    def close(self) -> int:
        """End the session with EOF; the exit status."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(TIMEOUT)

    def kill(self) -> None:
        """Make sure the process is gone and its pipes closed."""
        self.process.kill()
        self.process.wait(TIMEOUT)
        self._pump_thread.join(TIMEOUT)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def shell(qmp_path: str, tmp_path: Path) -> Iterator[Shell]:
    session = Shell(qmp_path, tmp_path)
    yield session
    session.kill()


def test_qmp_shell_plugs_and_unplugs_a_cpu(
    shell: Shell, machine: VirtMachine, guest: GuestDriver
) -> None:
    assert shell.line() == "Welcome to the QMP low-level shell!"
    assert shell.line().startswith("Connected to QEMU ")

    added = shell.execute("device_add driver=max-arm-cpu id=core4 core-id=4")
    assert added == {"return": {}}
    assert machine.vcpus[4].enabled and machine.vcpus[4].device_id == "core4"
    guest.handle_hotplug()
    masks = shell.execute("x-query-cpu-masks")["return"]
    assert (masks["enabled"], masks["online"]) == ("0-4", "0,4")

    refused = shell.execute("device_add driver=max-arm-cpu id=again core-id=4")
    assert refused["error"]["class"] == "GenericError"
    assert "already plugged" in refused["error"]["desc"]

    assert shell.execute("device_del id=core4") == {"return": {}}
    guest.handle_hotplug()
    assert 4 not in machine.cpu_masks().enabled
    assert shell.execute("query-status")["return"]["status"] == "running"
    shell.send("")  # an empty line prints the events received so far
    events: list[str] = []
    while not any("DEVICE_DELETED" in e for e in events):
        events.append(shell.line())
    assert "core4" in next(e for e in events if "DEVICE_DELETED" in e)

    missing = shell.execute("device_del id=core4")
    assert missing["error"]["class"] == "DeviceNotFound"
    assert shell.close() == 0
    machine.check_invariants()


def test_qmp_shell_hmp_mode_drives_the_monitor(
    qmp_path: str, tmp_path: Path, machine: VirtMachine
) -> None:
    """``qmp-shell -H`` (issue 8, item 12): it asks for 'help' and 'info' on connect, then
    tunnels every line through human-monitor-command to the monitor the CLI uses."""
    shell = Shell(qmp_path, tmp_path, "-H")
    try:
        assert shell.line() == "Welcome to the HMP shell!"
        assert shell.line().startswith("Connected to QEMU 9.2.0")
        shell.send("info status")
        while "VM status" not in (text := shell.line()):
            pass
        assert text.endswith("VM status: running")
        shell.send("device_add max-arm-cpu,id=core4,core-id=4")
        while "plugged" not in (text := shell.line()):
            pass
        assert "CPU 4 plugged as /machine/peripheral/core4" in text
        assert machine.vcpus[4].device_id == "core4"
        assert shell.close() == 0
    finally:
        shell.kill()
