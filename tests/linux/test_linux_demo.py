"""``vcpuhp demo --linux KERNEL INITRD``: the seed transcript as Linux shows it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from linux_testlib import CONSOLE_LOGS, STEP_TIMEOUT, LinuxFiles, boot_timeout, linux_accel


def test_the_linux_demo_prints_the_seed_transcript_from_linux(
    backend_name: str, backend_cpu: str, linux_files: LinuxFiles, userland_initrd: Path,
    artifacts: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vcpuhp", "demo", "--accel", linux_accel(backend_name),
         "--no-plugin-autoload", "--linux", str(linux_files.kernel), str(userland_initrd)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
        timeout=boot_timeout(backend_name) + 5 * STEP_TIMEOUT)
    artifacts.mkdir(parents=True, exist_ok=True)
    log = artifacts / f"{backend_name}-demo.console.log"
    log.write_text(done.stdout + done.stderr)
    CONSOLE_LOGS.append(log)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    masks = [line.removeprefix("guest| ") for line in done.stdout.splitlines()
             if line.startswith("guest| possible ")]
    assert masks[0] == "possible 0-5 present 0-5 enabled 0-3 online 0-1"
    steps = [masks[0]]
    for line in masks[1:]:
        if line != steps[-1]:
            steps.append(line)
    for wanted in ("possible 0-5 present 0-5 enabled 0-4 online 0-1",
                   "possible 0-5 present 0-5 enabled 0-4 online 0-1,4"):
        assert wanted in steps
    assert steps[-1] == "possible 0-5 present 0-5 enabled 0-3 online 0-1"
    assert f"> device_add {backend_cpu}-arm-cpu,id=core4,core-id=4" in done.stdout
    assert "event DEVICE_DELETED device=core4" in done.stdout
