"""Shared test configuration: Hypothesis profiles (HYPOTHESIS_PROFILE=ci in tox)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from cli_process import Serving, start_vcpuhp, wait_for_socket

pytest_plugins = ["pytester"]

settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def requires_tool(tool: str, package: str) -> pytest.MarkDecorator:
    """Mark a test that runs the system tool ``tool`` (Debian package ``package``).

    Where the tool is missing the test is skipped, saying what to install;
    under CI (``CI=true``) it fails instead, because ``.ci/run`` installs it:
    a tool CI installs is never a reason to skip there.
    """
    return pytest.mark.requires_tool(tool, package)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or, in CI, fail) tests whose ``requires_tool`` tools are missing."""
    for mark in item.iter_markers("requires_tool"):
        tool, package = mark.args
        if shutil.which(tool) is None:
            message = f"{tool} not found: apt-get install {package}"
            if IN_CI:
                pytest.fail(f"{message} (.ci/run should have installed it)", pytrace=False)
            pytest.skip(message)


@pytest.fixture
def vcpuhp_process() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``vcpuhp ARGS...`` and return once ``socket`` exists; killed at teardown.

    ``start(socket_path, *args)`` -> the running process.
    """
    started: list[subprocess.Popen[str]] = []

    def start(socket_path: Path, *args: str) -> subprocess.Popen[str]:
        proc = start_vcpuhp(*args, stdin=None)
        started.append(proc)
        wait_for_socket(socket_path, proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)


@pytest.fixture
def vcpuhp_serving(tmp_path: Path, vcpuhp_process: Callable[..., subprocess.Popen[str]]
                   ) -> Serving:
    """``serve("qmp" | "qtest", *run_args)``: ``vcpuhp run RUN_ARGS --monitor none --qmp (or
    --qtest) unix:PATH`` -> ``(process, PATH)`` once it listens; killed at teardown."""

    def serve(server: str, *run_args: str) -> tuple[subprocess.Popen[str], Path]:
        path = tmp_path / f"{server}.sock"
        proc = vcpuhp_process(path, "run", *run_args, "--monitor", "none",
                              f"--{server}", f"unix:{path}")
        return proc, path

    return serve
