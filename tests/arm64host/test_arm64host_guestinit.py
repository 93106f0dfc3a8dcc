"""The per-run scripts: the command and its environment reach the program exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arm64host.guestinit import INIT_SCRIPT, GuestShare, command_script, setup_script

ODD_ARGS = ["plain", "with space", "it's", 'say "hi"', "$HOME", "`id`", "a\nb", "", "*"]


def test_command_script_passes_argv_env_and_cwd_exactly(tmp_path: Path) -> None:
    script = tmp_path / "command.sh"
    env = {"PATH": os.environ["PATH"], "ODD": "x y'z\"$1", "EMPTY": ""}
    program = "import json, os, sys; print(json.dumps([sys.argv[1:], dict(os.environ), " \
              "os.getcwd()]))"
    script.write_text(command_script([sys.executable, "-c", program, *ODD_ARGS], env,
                                     str(tmp_path)))
    done = subprocess.run(["sh", str(script)], capture_output=True, text=True, check=True,
                          timeout=60)
    argv, seen_env, cwd = json.loads(done.stdout)
    assert argv == ODD_ARGS
    assert {k: v for k, v in seen_env.items() if k in env} == env
    assert set(seen_env) - set(env) <= {"PWD", "SHLVL", "_", "LC_CTYPE"}
    assert cwd == str(tmp_path)


def test_command_script_in_a_missing_directory_exits_125(tmp_path: Path) -> None:
    script = tmp_path / "command.sh"
    script.write_text(command_script(["true"], {}, str(tmp_path / "gone")))
    done = subprocess.run(["sh", str(script)], capture_output=True, timeout=60, check=False)
    assert done.returncode == 125


def test_an_empty_command_is_refused() -> None:
    with pytest.raises(ValueError, match="no command"):
        command_script([], {}, "/")


def test_setup_script_mounts_in_order_and_checks_the_directory() -> None:
    text = setup_script([GuestShare("project", "/work/my tree"),
                         GuestShare("l2", "/opt/vcpuhp/l2", readonly=True)], "/work/my tree")
    assert text.splitlines()[1:] == [
        "share project '/work/my tree' ''",
        "share l2 /opt/vcpuhp/l2 ,ro",
        "[ -d '/work/my tree' ] || fail 'no directory /work/my tree'",
    ]


def test_init_reports_every_setup_failure_with_a_fail_marker() -> None:
    lines = INIT_SCRIPT.splitlines()
    assert lines[0] == "#!/usr/bin/busybox sh"
    for step in ("mount /sys", "insmod $module", "mount of 9p share $1 at $2"):
        assert any(f'fail "{step}"' in line for line in lines), step
    assert 'echo "ARM64HOST-$nonce EXIT $status"' in INIT_SCRIPT
    assert lines[-1] == "poweroff -f"
