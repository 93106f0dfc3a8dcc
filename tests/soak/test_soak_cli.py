"""``vcpuhp run`` with stdin closed and stdout unread, driven over QMP (issue 8, item 2).

Before the fix, every event the command printed came from a listener that
wrote to stdout; with stdout on a pipe nobody reads, the pipe filled after
~850 plug cycles, the listener blocked, and with it every listener (QMP
events included) and then the machine. Now printing goes through a bounded
writer that drops what nobody reads and says how much.

One run does the issue's 5,000 cycles on a default 64 KiB pipe, another
shrinks the pipe to a page (``F_SETPIPE_SZ``) so it is full almost at once.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import tempfile
from pathlib import Path

from .qmp_sync import SyncQmp

_F_SETPIPE_SZ = 1031  # Linux fcntl.h; fcntl.F_SETPIPE_SZ exists from Python 3.10 on Linux
RSS_GROWTH_LIMIT_KIB = 16 * 1024
QMP_WORKERS = 8  # vcpuhp.qmp.server's worker pool ceiling


def _status(pid: int) -> dict[str, int]:
    """VmRSS (KiB) and Threads of a process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])
    return fields


def _soak(cycles: int, pipe_size: int | None) -> None:
    with tempfile.TemporaryDirectory(prefix="vsoak") as directory:
        qmp_path = Path(directory) / "qmp.sock"
        stderr_path = Path(directory) / "stderr"
        with stderr_path.open("w") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "vcpuhp.cli", "run", "--accel", "null",
                 "--smp", "cpus=1,maxcpus=2", "--qmp", f"unix:{qmp_path}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
            )
        assert proc.stdout is not None
        try:
            if pipe_size is not None:
                fcntl.fcntl(proc.stdout.fileno(), getattr(fcntl, "F_SETPIPE_SZ", _F_SETPIPE_SZ),
                            pipe_size)
            qmp = SyncQmp.connect_when_listening(str(qmp_path))
            warm = None
            for n in range(cycles):
                qmp.command("device_add", {"driver": "max-arm-cpu", "id": f"c{n}",
                                           "core-id": 1})
                qmp.command("device_del", {"id": f"c{n}"})
                deleted = qmp.wait_event("DEVICE_DELETED")
                assert deleted["data"]["device"] == f"c{n}"
                if n == min(100, cycles // 5):
                    warm = _status(proc.pid)
            masks = qmp.command("x-query-cpu-masks")
            assert masks["enabled"] == "0" and masks["online"] == "0"
            end = _status(proc.pid)
            assert warm is not None
            # The QMP worker pool may still grow to its ceiling; nothing else may.
            assert end["Threads"] <= warm["Threads"] + QMP_WORKERS, (warm, end)
            assert end["VmRSS"] - warm["VmRSS"] < RSS_GROWTH_LIMIT_KIB, (warm, end)
            qmp.command("quit")
            qmp.close()
            output = proc.stdout.read().decode()  # read only now: nobody read it until here
            assert proc.wait(timeout=60) == 0, stderr_path.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=60)
            proc.stdout.close()
        lines = output.splitlines()
        assert any(" lines dropped: output is not being read" in line for line in lines), \
            lines[:5]
        assert lines[-1].startswith("event DEVICE_DELETED device=c"), "the newest are kept"
        assert "Traceback" not in stderr_path.read_text()


def test_five_thousand_cycles_with_stdin_closed_and_stdout_unread() -> None:
    """The issue's "Done when": 5,000 cycles, responsive, bounded memory and threads."""
    _soak(cycles=5000, pipe_size=None)


def test_a_tiny_pipe_fills_within_a_few_cycles_and_nothing_stalls() -> None:
    _soak(cycles=1500, pipe_size=4096)
