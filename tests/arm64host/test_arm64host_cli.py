"""Command-line parsing and the tool's host checks (no QEMU, no network)."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

from arm64host import cli, hosttools
from arm64host.errors import Arm64HostError, HostToolMissing
from arm64host.qemu import HostShare, qemu_argv


@pytest.mark.parametrize(("text", "mib"), [("3072", 3072), ("3072M", 3072), ("3G", 3072),
                                            ("4g", 4096)])
def test_memory_sizes(text: str, mib: int) -> None:
    assert cli.parse_memory(text) == mib


def test_a_bad_memory_size_says_what_is_valid() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"MiB \(3072\), or a number"):
        cli.parse_memory("lots")


def test_env_pairs_and_copied_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "ci")
    assert cli.parse_env(["A=1", "B=x=y", "HYPOTHESIS_PROFILE", "EMPTY="]) == {
        "A": "1", "B": "x=y", "HYPOTHESIS_PROFILE": "ci", "EMPTY": ""}
    monkeypatch.delenv("NOT_SET_HERE", raising=False)
    with pytest.raises(Arm64HostError, match="NOT_SET_HERE is not set here"):
        cli.parse_env(["NOT_SET_HERE"])
    with pytest.raises(Arm64HostError, match="expected NAME=VALUE or NAME"):
        cli.parse_env(["=x"])


def test_run_without_a_command_fails_with_the_tool_status() -> None:
    assert cli.main(["--mode", "emulated", "run", "--"]) == cli.TOOL_FAILURE


def test_missing_tools_as_non_root_name_the_install_command(
        monkeypatch: pytest.MonkeyPatch) -> None:
    tool = hosttools.HostTool("no-such-command-arm64host", "qemu-system-arm")
    assert hosttools.missing_tools([tool]) == [tool]
    assert hosttools.missing_tools([tool], which=lambda _: "/usr/bin/x") == []
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(HostToolMissing, match=r"no-such-command-arm64host not found; install "
                       r"with: sudo apt-get install -y --no-install-recommends qemu-system-arm"):
        hosttools.ensure_tools([tool], log=lambda _: None)


def test_qemu_command_line() -> None:
    argv = qemu_argv(kernel=Path("/i/Image"), initrd=Path("/i/initrd.cpio"), append="quiet",
                     cpus=2, memory_mib=3072,
                     shares=[HostShare("project", Path("/w/a,b")),
                             HostShare("l2", Path("/c/l2"), readonly=True)])
    text = " ".join(argv)
    assert "-M virt,virtualization=on,gic-version=3" in text
    assert "-cpu max,pauth-impdef=on" in text
    assert "-accel tcg,thread=multi" in text
    assert "-smp 2 -m 3072M" in text
    assert "-fsdev local,id=fs0,path=/w/a,,b,security_model=none " in text
    assert "-fsdev local,id=fs1,path=/c/l2,security_model=none,readonly=on" in text
    assert "virtio-9p-pci,fsdev=fs1,mount_tag=l2" in text
    with pytest.raises(ValueError, match="at least 1"):
        qemu_argv(kernel=Path("k"), initrd=Path("i"), append="", cpus=0)


def test_linux_demo_builds_the_userland_then_runs_the_demo_with_the_l2_files(
    tmp_path: Path,
) -> None:
    """The command ``linux-demo`` runs inside, with a ``python3`` that records its calls."""
    log = tmp_path / "calls"
    fake = tmp_path / "bin" / "python3"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "VCPUHP_TEST_KERNEL": "/l2/vmlinuz",
           "VCPUHP_TEST_BUSYBOX": "/l2/busybox", "VCPUHP_TEST_EVDEV": "/l2/evdev.ko"}
    subprocess.run(cli.linux_demo_command(["--cycles", "3"]), env=env, check=True, timeout=30)
    assert log.read_text().splitlines() == [
        "-m vcpuhp.testing.linux_userland --busybox /l2/busybox --module /l2/evdev.ko "
        "-o /tmp/vcpuhp-userland.cpio",
        "-m vcpuhp demo --linux /l2/vmlinuz /tmp/vcpuhp-userland.cpio --cycles 3",
    ]
