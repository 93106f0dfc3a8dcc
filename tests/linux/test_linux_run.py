"""``vcpuhp run`` booting Linux: a burst of hotplug before the guest scans, and power-off.

The machine is the real command line (``vcpuhp run --kernel --initrd --append
--qmp``) driven by the real ``qemu.qmp`` client; the guest's masks come from
its console lines on the command's output (``guest| …``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from linux_testlib import (
    APPEND,
    CONSOLE_LOGS,
    STEP_TIMEOUT,
    LinuxFiles,
    boot_timeout,
    linux_accel,
    masks,
    pull_event,
)
from qemu.qmp.legacy import QEMUMonitorProtocol

from vcpuhp.masks import CpuMasks
from vcpuhp.testing.linux_userland import UserlandConsole

SMP: Final = "cpus=4,maxcpus=16"
GUEST_PREFIX: Final = "guest| "


class RunProcess:
    """``vcpuhp run`` with QMP on a unix socket; its guest console parsed as it comes."""

    def __init__(self, backend: str, cpu: str, files: LinuxFiles, initrd: Path,
                 log_path: Path) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="vlrun")
        self.qmp_path = os.path.join(self._dir.name, "qmp.sock")
        self.cpu_type = f"{cpu}-arm-cpu"
        self.boot_timeout = boot_timeout(backend)
        self._boot: CpuMasks | BaseException | None = None
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("w")
        CONSOLE_LOGS.append(log_path)
        self.console = UserlandConsole(log=self._log)
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vcpuhp", "run", "--accel", linux_accel(backend), "--cpu", cpu,
             "--smp", SMP, "--kernel", str(files.kernel), "--initrd", str(initrd),
             "--append", APPEND, "--qmp", f"unix:{self.qmp_path}", "--monitor", "none",
             "--no-plugin-autoload"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        self._reader = threading.Thread(target=self._read, name="vcpuhp-run-output",
                                        daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.rstrip("\n")
            self.output.append(line)
            if line.startswith(GUEST_PREFIX):
                self.console.feed(line[len(GUEST_PREFIX):])
        self.console.stopped(f"vcpuhp run exited with status {self.process.wait()}")

    def wait_ready(self) -> CpuMasks:
        """The masks at ``userland ready``; a boot that failed fails every later call at once."""
        if self._boot is None:
            try:
                self._boot = self.console.wait_ready(self.boot_timeout)
            except Exception as exc:
                self._boot = exc
        if isinstance(self._boot, BaseException):
            raise RuntimeError(f"vcpuhp run's Linux failed to boot: {self._boot}")
        return self._boot

    def qmp(self) -> QEMUMonitorProtocol:
        deadline = time.monotonic() + self.boot_timeout
        while not os.path.exists(self.qmp_path):
            assert self.process.poll() is None, "\n".join(self.output[-20:])
            assert time.monotonic() < deadline, "the QMP socket never appeared"
            time.sleep(0.1)
        client = QEMUMonitorProtocol(self.qmp_path)
        client.settimeout(STEP_TIMEOUT)
        client.connect()
        return client

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STEP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self._reader.join(30)
        self._log.close()
        self._dir.cleanup()


@pytest.fixture(scope="module")
def linux_run(backend_name: str, backend_cpu: str, linux_files: LinuxFiles,
              userland_initrd: Path, artifacts: Path) -> Iterator[RunProcess]:
    """``vcpuhp run`` booting Linux with ``cpus=4,maxcpus=16`` (shared by this module)."""
    run = RunProcess(backend_name, backend_cpu, linux_files, userland_initrd,
                     artifacts / f"{backend_name}-run.console.log")
    try:
        yield run
    finally:
        run.close()


def test_a_burst_of_device_add_before_linux_scans_enables_every_cpu(
    linux_run: RunProcess,
) -> None:
    assert linux_run.wait_ready() == masks(
        "possible 0-15 present 0-15 enabled 0-3 online 0-1")
    client = linux_run.qmp()
    client.cmd("stop")  # no vCPU runs: Linux cannot scan between the plugs
    for core in range(4, 16):
        client.cmd("device_add", driver=linux_run.cpu_type, id=f"core{core}",
                   **{"core-id": core})
    client.cmd("cont")
    linux_run.console.wait_masks(
        masks("possible 0-15 present 0-15 enabled 0-15 online 0-1"), STEP_TIMEOUT)
    plugged = [cpu for cpu in client.cmd("query-hotpluggable-cpus")  # type: ignore[union-attr]
               if "qom-path" in cpu]
    assert len(plugged) == 16
    client.close()


def test_system_powerdown_powers_linux_off_and_vcpuhp_run_exits_0(
    linux_run: RunProcess,
) -> None:
    linux_run.wait_ready()
    client = linux_run.qmp()
    client.cmd("system_powerdown")
    shutdown = pull_event(client, "SHUTDOWN")
    assert shutdown["data"]["guest"] is True
    assert linux_run.process.wait(STEP_TIMEOUT) == 0
    assert linux_run.console.powering_off, "the userland saw the power button"
    with contextlib.suppress(EOFError):  # vcpuhp exited; qemu.qmp re-raises the hang-up
        client.close()
