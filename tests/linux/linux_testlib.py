"""A Debian Linux guest under vcpuhp with the test userland: boot it, drive it, restore it.

Every wait is bounded; a kernel panic or a stopped machine ends a wait at
once (:class:`~vcpuhp.testing.linux_userland.GuestDied`). The guest's console
goes to ``test-artifacts/linux/<backend>-<name>.console.log`` in the checkout.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from qemu.qmp.legacy import QEMUMonitorProtocol

from vcpuhp import MachineConfig, VirtMachine
from vcpuhp.masks import CpuMasks
from vcpuhp.plugin_settings import PluginSettings
from vcpuhp.plugins import PluginManager
from vcpuhp.qmp import QmpServer
from vcpuhp.testing.linux_userland import CommandResult, UserlandConsole

APPEND: Final = "console=ttyAMA0 earlycon maxcpus=2 quiet panic=-1 oops=panic"
"""The guest command line: the seeds' ``maxcpus=2``; ``quiet`` keeps the boot log off the
console (each byte is an MMIO exit; under emulation a verbose boot takes three times as
long; the userland reports the kernel log's warnings and firmware complaints itself);
``earlycon`` (from the SPCR) shows a panic before the UART driver is up, and ``panic=-1
oops=panic`` turn any oops into a PSCI ``SYSTEM_RESET``, which ends every wait at once."""
BOOT_TIMEOUTS: Final = {"kvm": 900.0, "tcg-unicorn": 300.0}
"""Boot to the userland. kvm: ~20-30 s inside the emulated host on a loaded 2-core machine,
so a wide margin. tcg-unicorn with ``exec=serial`` (:data:`LINUX_ACCEL`): ~70 s on a
quiet 2-core x86 machine (a third of it ftrace patching the kernel, each patch with its
cache and TLB maintenance), so a wide margin too."""
LINUX_ACCEL: Final = {"tcg-unicorn": {"exec": "serial"}}
"""The backend options a backend runs Linux with, if any.
tcg-unicorn runs Linux with one engine executing at a time: Unicorn 2.1.4 translates
``LDXR``/``STXR`` and the LSE atomics as a plain load and store, so engines executing at
once lose atomic updates, and a boot with parallel engines hangs now and then (a lock
that lost an update; ``test_unicorn_atomics.py`` shows the lost updates). Serial, the
same boot takes ~70 s instead of ~65 s and has not hung."""
STEP_TIMEOUT: Final = 180.0
ARTIFACTS: Final = Path("test-artifacts") / "linux"
CONSOLE_LOGS: list[Path] = []
"""The console logs written in this session (the terminal summary lists them)."""
ENV_FILES: Final = {"kernel": "VCPUHP_TEST_KERNEL", "busybox": "VCPUHP_TEST_BUSYBOX",
                    "evdev": "VCPUHP_TEST_EVDEV"}


def linux_accel(backend: str) -> str:
    """``--accel`` for a Linux guest on ``backend`` (see :data:`LINUX_ACCEL`)."""
    options = LINUX_ACCEL.get(backend, {})
    return ",".join([backend, *(f"{key}={value}" for key, value in options.items())])


def boot_timeout(backend: str) -> float:
    """Seconds a boot to the userland may take on ``backend``."""
    return BOOT_TIMEOUTS.get(backend, max(BOOT_TIMEOUTS.values()))


def masks(text: str) -> CpuMasks:
    """``CpuMasks`` from ``possible 0-5 present 0-5 enabled 0-3 online 0-1``."""
    return CpuMasks.parse(text)


@dataclass(frozen=True)
class LinuxFiles:
    """The Debian arm64 kernel, busybox-static's busybox and the kernel's evdev module."""

    kernel: Path
    busybox: Path
    evdev: Path


class LinuxGuest:
    """One machine booting Linux with the userland, a QMP server, and its console."""

    def __init__(self, backend: str, smp: str, kernel: Path, initrd: Path, name: str,
                 artifacts: Path, append: str = APPEND) -> None:
        cpu = PluginManager().backends.preferred_cpu_model(backend)
        self.backend = backend
        self.config = MachineConfig.build(smp, cpu=cpu, accel=backend,
                                          backend_options=LINUX_ACCEL.get(backend, {}),
                                          memory="256M",
                                          kernel=kernel, initrd=initrd, guest_cmdline=append,
                                          plugins=PluginSettings(autoload=False))
        self.machine = VirtMachine(self.config)
        artifacts.mkdir(parents=True, exist_ok=True)
        self.log_path = artifacts / f"{backend}-{name}.console.log"
        self._log: TextIO = self.log_path.open("w")
        CONSOLE_LOGS.append(self.log_path)
        self.console = UserlandConsole.attach(self.machine, self._log)
        self._socket_dir = tempfile.TemporaryDirectory(prefix="vlinux")
        self.qmp_path = os.path.join(self._socket_dir.name, "qmp.sock")
        self.server = QmpServer(self.machine, f"unix:{self.qmp_path}")
        self._clients: list[QEMUMonitorProtocol] = []
        self.baseline: CpuMasks | None = None

    def boot(self) -> CpuMasks:
        """Realize the machine and wait for the userland; the masks it printed first."""
        self.machine.realize()
        self.server.start()
        self.baseline = self.console.wait_ready(boot_timeout(self.backend))
        return self.baseline

    def qmp(self) -> QEMUMonitorProtocol:
        """A negotiated ``qemu.qmp`` client (closed with the guest)."""
        client = QEMUMonitorProtocol(self.qmp_path)
        client.settimeout(STEP_TIMEOUT)
        client.connect()
        self._clients.append(client)
        return client

    def wait_masks(self, expected: CpuMasks) -> CpuMasks:
        """Wait until the guest printed ``expected``."""
        return self.console.wait_masks(expected, STEP_TIMEOUT)

    def online(self, cpu: int) -> CommandResult:
        """``online N`` at the guest's console; its result."""
        return self.console.online(cpu, STEP_TIMEOUT)

    def offline(self, cpu: int) -> CommandResult:
        """``offline N`` at the guest's console; its result."""
        return self.console.offline(cpu, STEP_TIMEOUT)

    def restore(self) -> None:
        """Back to the masks of boot: offline and unplug what a test plugged or onlined.

        Raises if the guest does not get there, so the caller can retire it.
        """
        assert self.baseline is not None
        current = self.console.current
        assert current is not None
        if current == self.baseline and self.machine.cpu_masks() == self.baseline:
            return
        for cpu in sorted(current.online - self.baseline.online):
            self.offline(cpu)
        for vcpu in self.machine.vcpus:
            if vcpu.enabled and vcpu.slot.index not in self.baseline.enabled:
                with self.machine.events.recorder() as recorder:
                    self.machine.device_del(vcpu.device_id or vcpu.qom_path)
                    recorder.wait_for("DEVICE_DELETED",
                                      lambda e, i=vcpu.slot.index: e.data["cpu_index"] == i,
                                      timeout=STEP_TIMEOUT)
        self.wait_masks(self.baseline)

    def close(self) -> None:
        """Close the clients and the server, shut the machine down, close the log."""
        for client in self._clients:
            client.close()
        self.server.close()
        self.machine.shutdown()
        self.console.close()
        self._log.close()
        self._socket_dir.cleanup()


def pull_event(client: QEMUMonitorProtocol, name: str) -> dict[str, Any]:
    """The next QMP event called ``name`` (others are passed over)."""
    while True:
        event = client.pull_event(wait=STEP_TIMEOUT)
        assert event is not None, f"no QMP event within {STEP_TIMEOUT}s; wanted {name}"
        if event["event"] == name:
            return event


__all__ = ["APPEND", "ARTIFACTS", "BOOT_TIMEOUTS", "CONSOLE_LOGS", "ENV_FILES", "LINUX_ACCEL",
           "STEP_TIMEOUT", "LinuxFiles", "LinuxGuest", "boot_timeout", "linux_accel", "masks",
           "pull_event"]
