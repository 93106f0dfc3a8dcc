"""Generated .dist-info for the checkout's distributions: importlib.metadata reads them."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from arm64host.dists import DEFAULT_DISTS, entry_points_text, find_dists, read_dist, write_metadata
from arm64host.errors import BuildError

PROJECT = Path(__file__).resolve().parents[2]


def test_the_checkouts_distributions_are_found_and_absent_ones_skipped() -> None:
    dists = find_dists(PROJECT, [*DEFAULT_DISTS, "backends/does-not-exist"])
    names = [d.name for d in dists]
    assert names[:2] == ["vcpuhp-core", "vcpuhp-null"]
    assert "vcpuhp-audit-log" in names
    core = dists[0]
    assert core.import_root == PROJECT / "vcpuhp-core" / "src"
    assert core.entry_points["console_scripts"] == {"vcpuhp": "vcpuhp.cli:main"}
    assert core.entry_points["pytest11"] == {"vcpuhp": "vcpuhp.testing.pytest_plugin"}


def test_importlib_metadata_finds_the_generated_entry_points(tmp_path: Path) -> None:
    dists = find_dists(PROJECT, DEFAULT_DISTS)
    roots = write_metadata(dists, tmp_path / "site")
    assert roots[0] == PROJECT / "vcpuhp-core" / "src"
    found = {d.metadata["Name"]: d for d in
             importlib.metadata.distributions(path=[str(tmp_path / "site")])}
    assert set(found) == {d.name for d in dists}
    backends = {ep.name: ep.value for ep in found["vcpuhp-null"].entry_points
                if ep.group == "vcpuhp.backends"}
    assert backends == {"null": "vcpuhp_null.backend:NullBackend"}
    assert found["vcpuhp-core"].version == "0.1.0"


def test_entry_points_text_is_grouped_and_sorted() -> None:
    text = entry_points_text({"b.group": {"z": "m:z", "a": "m:a"}, "a.group": {"x": "m:x"}})
    assert text == "[a.group]\nx = m:x\n\n[b.group]\na = m:a\nz = m:z\n"


def test_a_pyproject_without_static_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\ndynamic = ["version"]\n')
    with pytest.raises(BuildError, match="static name and version"):
        read_dist(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(BuildError, match="cannot read a distribution"):
        read_dist(tmp_path)
