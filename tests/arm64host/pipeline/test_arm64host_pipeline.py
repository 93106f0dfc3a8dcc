"""The whole pipeline through the tool's API: a command goes in, its output and status come out.

These boot the real emulated host (or run directly on an arm64 KVM host), so
they show that a failing command fails the run: the kvm-arm64 env's inner
pytest run could not pass by accident.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from arm64host import Arm64Host, GuestFailure, Mode, RunRequest, RunResult, guestinit
from arm64host.console import new_nonce
from arm64host.guest import BootSpec, boot_and_run
from arm64host.qemu import HostShare

PROJECT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def host() -> Arm64Host:
    arm64 = Arm64Host()
    arm64.image()  # built once, before the first timed run
    return arm64


@pytest.fixture
def emulated(host: Arm64Host) -> Arm64Host:
    if host.mode is not Mode.EMULATED:
        pytest.skip("the init and the kernel are the emulated host's; this host runs directly")
    return host


def run(host: Arm64Host, *argv: str, **options: object) -> tuple[RunResult, str]:
    out = io.StringIO()
    result = host.run(RunRequest(argv=argv, **options), output=out)  # type: ignore[arg-type]
    return result, out.getvalue()


def test_a_failing_commands_status_and_output_come_back(host: Arm64Host) -> None:
    result, out = run(host, "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
    assert result.exit_status == 3
    assert out.splitlines() == ["to-stdout", "to-stderr"]


def test_a_crashed_command_is_reported_with_the_kernels_last_lines(emulated: Arm64Host) -> None:
    # A real fault (not a kill): the kernel logs the faulting address and the program.
    program = "import ctypes; ctypes.string_at(8)"
    result, out = run(emulated, "python3", "-c", program)
    assert result.exit_status == 128 + 11
    report = out.splitlines()
    assert "[arm64host] the command was killed by signal 11; the kernel's last lines:" in report
    after = report[report.index(
        "[arm64host] the command was killed by signal 11; the kernel's last lines:") + 1:]
    assert any("python3" in line and "fault" in line for line in after), out


def test_a_missing_program_is_status_127(host: Arm64Host) -> None:
    result, _ = run(host, "no-such-program-arm64host")
    assert result.exit_status == 127


def test_environment_and_directory_are_the_requested_ones(host: Arm64Host) -> None:
    program = ("import os; print(os.getcwd()); print(os.environ['ARM64HOST_PROBE']); "
               "print(os.environ['VCPUHP_TEST_KERNEL_IMAGE'])")
    result, out = run(host, "python3", "-c", program, env={"ARM64HOST_PROBE": "a b'c"},
                      cwd=PROJECT / "tests")
    assert result.exit_status == 0
    cwd, probe, kernel = out.splitlines()
    assert (cwd, probe) == (str(PROJECT / "tests"), "a b'c")
    assert kernel.endswith("/Image")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=".arm64host-test-", dir=PROJECT))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_files_written_inside_come_back_to_the_checkout(host: Arm64Host,
                                                        shared_dir: Path) -> None:
    artifact = shared_dir / "artifact.txt"
    result, _ = run(host, "sh", "-c", f"uname -m > {artifact}")
    assert result.exit_status == 0
    assert artifact.read_text() == "aarch64\n"


def test_a_command_past_its_timeout_is_killed(host: Arm64Host) -> None:
    with pytest.raises(GuestFailure, match=r"within \d+ s; .*killed"):
        run(host, "sleep", "3600", timeout=15.0)


def boot_with_setup(host: Arm64Host, setup: str, command: str) -> None:
    image = host.image()
    run_dir = Path(tempfile.mkdtemp(prefix="arm64host-test-"))
    try:
        (run_dir / "setup.sh").write_text(setup)
        (run_dir / "command.sh").write_text(command)
        spec = BootSpec(kernel=image.kernel, initrd=image.initrd,
                        shares=[HostShare(guestinit.RUN_SHARE_TAG, run_dir)])
        boot_and_run(spec, new_nonce(), None, timeout=300)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_an_init_failure_is_reported_with_its_reason(emulated: Arm64Host) -> None:
    with pytest.raises(GuestFailure, match="the init failed before the command: "
                       "mount of 9p share nosuchtag at /mnt/x"):
        boot_with_setup(emulated, "share nosuchtag /mnt/x ''\n", "true\n")


def test_a_kernel_panic_is_reported_with_the_console_tail(emulated: Arm64Host) -> None:
    with pytest.raises(GuestFailure, match="the kernel panicked") as caught:
        boot_with_setup(emulated, "", "echo c > /proc/sysrq-trigger\n")
    assert any("sysrq" in line.lower() for line in caught.value.console_tail)
