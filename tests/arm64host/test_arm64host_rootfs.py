"""Staging the root file system: merged /usr, pruning, the interpreter name, wheels."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from arm64host.errors import BuildError
from arm64host.rootfs import install_wheel, merge_usr, prune, python_name


def test_merge_usr_moves_top_level_files_and_links_the_directories(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "old-tool").write_text("x")
    (tmp_path / "lib" / "firmware").mkdir(parents=True)
    (tmp_path / "lib" / "firmware" / "f").write_text("f")
    (tmp_path / "usr" / "lib" / "firmware").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "firmware" / "g").write_text("g")
    merge_usr(tmp_path)
    for name in ("bin", "sbin", "lib"):
        assert os.readlink(tmp_path / name) == f"usr/{name}"
    assert (tmp_path / "usr" / "bin" / "old-tool").read_text() == "x"
    assert sorted(p.name for p in (tmp_path / "usr" / "lib" / "firmware").iterdir()) == ["f", "g"]


def test_merge_usr_refuses_a_file_in_both_places(tmp_path: Path) -> None:
    for base in ("bin", "usr/bin"):
        (tmp_path / base).mkdir(parents=True)
        (tmp_path / base / "sh").write_text(base)
    with pytest.raises(BuildError, match="/bin/sh and /usr/bin/sh both exist"):
        merge_usr(tmp_path)


def test_prune_and_python_name(tmp_path: Path) -> None:
    (tmp_path / "usr" / "share" / "doc" / "p").mkdir(parents=True)
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    os.symlink("python3.13", tmp_path / "usr" / "bin" / "python3")
    prune(tmp_path)
    assert not (tmp_path / "usr" / "share" / "doc").exists()
    assert python_name(tmp_path) == "python3.13"


def test_install_wheel_unpacks_into_the_local_site_and_refuses_escapes(tmp_path: Path) -> None:
    wheel = tmp_path / "w-1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("qemu/qmp/__init__.py", "")
        archive.writestr("w-1.dist-info/METADATA", "Name: w\n")
    install_wheel(wheel, tmp_path / "root", "python3.13")
    site = tmp_path / "root" / "usr" / "local" / "lib" / "python3.13" / "dist-packages"
    assert (site / "qemu" / "qmp" / "__init__.py").exists()
    evil = tmp_path / "evil.whl"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../escape.py", "")
    with pytest.raises(BuildError, match="unsafe member"):
        install_wheel(evil, tmp_path / "root", "python3.13")
