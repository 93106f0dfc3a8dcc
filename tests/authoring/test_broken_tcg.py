"""The suite catches a backend that executes guest code and ignores pause (needs Unicorn:
collected only for a tcg-unicorn run, see ``conftest.py``)."""

from __future__ import annotations

import shutil

import pytest

from conftest import HERE, install_entry_points


def test_the_suite_fails_a_backend_that_keeps_running_while_paused(
    suite_project: pytest.Pytester,
) -> None:
    shutil.copy(HERE / "broken_tcg.py", suite_project.path / "broken_tcg.py")
    install_entry_points(suite_project.path, "broken-tcg", {"vcpuhp.backends": {
        "broken-ignores-pause": "broken_tcg:IgnoresPause"}})
    result = suite_project.runpytest_subprocess(
        "--vcpuhp-backend=broken-ignores-pause", "-k", "paused_machine_runs_nothing",
        "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(["*contract: pause stops executing every vCPU until resume*"])
