"""Helpers for running pytest on a throw-away project that installs entry points.

:func:`install_entry_points` writes a ``*.dist-info`` directory into the
pytester directory, which is the working directory (and so on ``sys.path``)
of a ``runpytest_subprocess`` run: to ``importlib.metadata`` that is an
installed distribution, exactly as if it had been installed with pip.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from selected_backend import selected_backend

HERE = Path(__file__).parent
UNICORN_TESTS = {"test_broken_tcg.py"}
"""Tests that execute guest code under Unicorn: collected only for a tcg-unicorn run."""


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name in UNICORN_TESTS:
        return selected_backend(config) != "tcg-unicorn"
    return None


def install_entry_points(root: Path, distribution: str,
                         groups: dict[str, dict[str, str]]) -> None:
    """Make ``root`` hold an installed distribution with these entry points."""
    info = root / f"{distribution.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
    lines = []
    for group, entries in groups.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def suite_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project whose only test file collects the conformance suite."""
    pytester.makepyfile(test_conformance="from vcpuhp.testing.suite import *  # noqa: F403\n")
    return pytester


@pytest.fixture
def broken_project(suite_project: pytest.Pytester) -> pytest.Pytester:
    """:func:`suite_project` with every backend of ``broken_backends`` installed."""
    from broken_backends import BROKEN

    for module in ("broken_backends.py", "threaded_backends.py"):
        shutil.copy(HERE / module, suite_project.path / module)
    install_entry_points(suite_project.path, "broken-backends", {"vcpuhp.backends": {
        name: f"broken_backends:{cls.__name__}" for name, (cls, _k, _t) in BROKEN.items()}})
    return suite_project
