"""How ``vcpuhp run`` starts, reads its monitor and ends (issue 8, items 4, 9, 10, 11).

QEMU is the model: end of input ends only the monitor, the guest powering
off ends the command at once, a signal is a clean "terminating on signal N",
and QEMU's single-dash options work.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_process import VCPUHP, run_vcpuhp, start_vcpuhp, wait_for_socket
from soak.qmp_sync import SyncQmp
from vcpuhp_null.protocol import ProtocolClient

TIMEOUT = 60.0


@pytest.fixture
def qtest_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "qtest.sock"


def _stderr_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    ready, _, _ = select.select([proc.stderr], [], [], TIMEOUT)
    assert ready, "nothing on stderr"
    return proc.stderr.readline()


def test_end_of_input_ends_the_monitor_not_the_machine(qtest_path: Path) -> None:
    """stdin at EOF (a script, CI, nohup): the machine runs on until the guest powers off."""
    proc = start_vcpuhp("run", "--accel", "null", "--smp", "cpus=2,maxcpus=3",
                  "--qtest", f"unix:{qtest_path}")
    try:
        assert "end of monitor input; the machine runs on" in _stderr_line(proc)
        wait_for_socket(qtest_path, proc, TIMEOUT)
        client = ProtocolClient.connect(f"unix:{qtest_path}")
        assert client("masks").startswith("OK possible 0-2"), "still running after EOF"
        assert proc.poll() is None
        assert client("psci 0 SYSTEM_OFF") == "OK 0"
        client.close()
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "event SHUTDOWN guest=True, reason=guest-shutdown" in out


def test_guest_power_off_ends_the_command_without_waiting_for_stdin(qtest_path: Path) -> None:
    proc = start_vcpuhp("run", "--accel", "null", "--smp", "cpus=1,maxcpus=2",
                  "--qtest", f"unix:{qtest_path}", stdin=subprocess.PIPE)
    try:  # stdin stays open and silent
        wait_for_socket(qtest_path, proc, TIMEOUT)
        client = ProtocolClient.connect(f"unix:{qtest_path}")
        assert client("psci 0 SYSTEM_OFF") == "OK 0"
        client.close()
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_is_a_clean_termination(qtest_path: Path, signum: int) -> None:
    """Ctrl-C (SIGINT) in the monitor used to print a KeyboardInterrupt traceback."""
    proc = start_vcpuhp("run", "--accel", "null", "--qtest", f"unix:{qtest_path}",
                  stdin=subprocess.PIPE)
    wait_for_socket(qtest_path, proc, TIMEOUT)
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert f"vcpuhp: terminating on signal {signum}" in err
    assert "Traceback" not in err
    assert not qtest_path.exists(), "sockets removed on the way out"


def test_qemu_style_single_dash_options(tmp_path: Path) -> None:
    qmp = tmp_path / "qmp.sock"
    proc = start_vcpuhp("run", "-smp", "4", "-m", "size=512M", "-accel", "null", "-cpu", "max",
                  "-append", "maxcpus=1", "-name", "vm1", "-monitor", "none",
                  "-qmp", f"unix:{qmp},server=on,wait=off")
    try:
        client = SyncQmp.connect_when_listening(str(qmp))
        assert client.command("query-name") == {"name": "vm1"}
        masks = client.command("x-query-cpu-masks")
        assert (masks["possible"], masks["enabled"], masks["online"]) == ("0-3", "0-3", "0")
        client.command("quit")
        client.close()
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize(("args", "message"), [
    (["-qmp", "unix:/tmp/x.sock,server=on,wait=on"], "'wait=on' is not supported"),
    (["-qmp", "ftp:x"], "QMP address kind 'ftp' is not supported"),
    (["-m", "1G,maxmem=4G"], "only a size is supported"),
    (["-accel", "null,defer-start"], "'defer-start' is not key=value"),
    (["--unplug-timeout", "soon"], "give a positive number of seconds"),
])
def test_options_vcpuhp_cannot_honour_are_clear_errors(args: list[str], message: str) -> None:
    result = run_vcpuhp("run", "--accel", "null", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_version_and_help_with_defaults() -> None:
    version = run_vcpuhp("--version")
    assert version.returncode == 0 and version.stdout.startswith("vcpuhp 0.1.0 (QMP as QEMU ")
    helped = run_vcpuhp("run", "--help")
    assert helped.returncode == 0
    assert "(default: cpus=4,maxcpus=6)" in helped.stdout
    assert "(default: 256M)" in helped.stdout
    assert "-smp SMP" in helped.stdout and "-qmp QMP" in helped.stdout


def test_verbose_works_after_the_subcommand() -> None:
    result = run_vcpuhp("run", "--accel", "null", "-v", stdin="quit\n")
    assert result.returncode == 0, result.stderr
    assert "DEBUG " in result.stderr


def test_the_output_legend_and_info_listing() -> None:
    result = run_vcpuhp("run", "--accel", "null", stdin="info\ninfo version\nquit\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "'guest| ' lines are the guest's console" in out
    assert "info status" in out and "-- show the current VM status" in out
    assert "9.2.0 (vcpuhp 0.1.0)" in out


def test_a_kernel_the_null_backend_will_not_load_is_named_in_a_warning(tmp_path: Path) -> None:
    kernel, initrd = tmp_path / "Image", tmp_path / "initrd"
    kernel.write_bytes(b"\0" * 4096)
    initrd.write_bytes(b"\0" * 512)
    result = run_vcpuhp("run", "--accel", "null", "--kernel", str(kernel), "--initrd",
                        str(initrd), stdin="quit\n")
    assert result.returncode == 0, result.stderr
    assert ("vcpuhp: warning: --kernel and --initrd not loaded: backend 'null' executes no "
            "guest code") in result.stderr
    plain = run_vcpuhp("run", "--accel", "null", stdin="quit\n")
    assert "warning" not in plain.stderr


def test_ram_the_host_refuses_is_a_clear_error() -> None:
    from test_host_limits import _heuristic_overcommit_limit

    limit = _heuristic_overcommit_limit()
    if limit is None or limit >= 255 << 30:
        pytest.skip("this host's kernel would overcommit 255G")
    result = run_vcpuhp("run", "--accel", "null", "-m", "255G", stdin="quit\n")
    assert result.returncode == 2
    assert "vcpuhp: error: cannot reserve 255G of guest RAM" in result.stderr
    assert "Traceback" not in result.stderr


class Terminal:
    """``vcpuhp run`` on a pseudo-terminal, as a person at the monitor sees it."""

    def __init__(self, *args: str) -> None:
        self.master, slave = os.openpty()
        env = {**os.environ, "TERM": "xterm", "INPUTRC": "/dev/null"}
        self.proc = subprocess.Popen([*VCPUHP, *args],
                                     stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                                     env=env, start_new_session=True)
        os.close(slave)
        self.screen = ""

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, text: str, after: int = 0) -> int:
        """Wait until ``text`` appears at or after offset ``after``; its offset."""
        deadline = time.monotonic() + TIMEOUT
        while text not in self.screen[after:]:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} never appeared; screen: {self.screen[-2000:]!r}"
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    self.screen += os.read(self.master, 65536).decode(errors="replace")
                except OSError:  # the process closed the terminal
                    raise AssertionError(f"{text!r} never appeared: {self.screen!r}") from None
        return self.screen.index(text, after)

    def close(self) -> int:
        self.type("quit\r")
        code = self.proc.wait(TIMEOUT)
        os.close(self.master)
        return code


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal("run", "--accel", "null", "--smp", "cpus=1,maxcpus=2",
                    "--qmp", f"unix:{tmp_path / 'qmp.sock'}")
    yield term
    if term.proc.poll() is None:
        term.proc.kill()
        term.proc.wait(TIMEOUT)


def test_the_monitor_has_history_and_line_editing(terminal: Terminal) -> None:
    terminal.expect("(vcpuhp) ")
    terminal.type("info status\r")
    first = terminal.expect("VM status: running")
    terminal.type("\x1b[A\r")  # up arrow: the previous line again
    terminal.expect("VM status: running", after=first + 1)
    mark = len(terminal.screen)
    terminal.type("info stXX\x7f\x7f\x1b[D\x1b[Ca\r")  # backspace twice, left, right
    terminal.expect("Error: unknown info topic 'sta'", after=mark)
    assert terminal.close() == 0


def test_the_prompt_is_redrawn_after_asynchronous_output(
    terminal: Terminal, tmp_path: Path
) -> None:
    terminal.expect("(vcpuhp) ")
    terminal.type("info sta")  # half a line, not entered
    qmp = SyncQmp.connect_when_listening(str(tmp_path / "qmp.sock"))
    qmp.command("device_add", {"driver": "max-arm-cpu", "id": "c1", "core-id": 1})
    qmp.command("device_del", {"id": "c1"})
    event = terminal.expect("event DEVICE_DELETED device=c1")
    terminal.expect("(vcpuhp) info sta", after=event)  # the prompt and the typed text again
    terminal.type("tus\r")
    terminal.expect("VM status: running", after=event)
    qmp.close()
    assert terminal.close() == 0
