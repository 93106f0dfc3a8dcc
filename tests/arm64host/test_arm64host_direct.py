"""Direct mode's runner, on this machine: merged output, statuses, the timeout."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from arm64host.direct import run_directly
from arm64host.errors import GuestFailure


def test_status_and_merged_output(tmp_path: Path) -> None:
    out = io.StringIO()
    status, _ = run_directly(["sh", "-c", "pwd; echo err >&2; echo $PROBE; exit 5"],
                             {**os.environ, "PROBE": "p"}, tmp_path, 60, out)
    assert status == 5
    assert out.getvalue().splitlines() == [str(tmp_path), "err", "p"]


def test_missing_and_unexecutable_programs_get_the_shells_statuses(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_directly(["no-such-program-arm64host"], os.environ, tmp_path, 60, out)[0] == 127
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    assert run_directly([str(script)], os.environ, tmp_path, 60, out)[0] == 126
    assert out.getvalue().startswith("no-such-program-arm64host: No such file or directory\n")


def test_a_command_past_its_timeout_is_killed(tmp_path: Path) -> None:
    with pytest.raises(GuestFailure, match=r"within 1 s; killed"):
        run_directly(["sleep", "60"], os.environ, tmp_path, 1, None)
