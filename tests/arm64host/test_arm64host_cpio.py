"""The newc cpio writer, read back by an independent reader of the format."""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from arm64host.cpio import HEADER_SIZE, TRAILER, CpioWriter


@dataclass
class Entry:
    name: str
    mode: int
    mtime: int
    rdev: tuple[int, int]
    data: bytes
    uid: int


def read_newc(blob: bytes) -> list[list[Entry]]:
    """Every archive in ``blob`` (archives may be concatenated), entries in order."""
    archives: list[list[Entry]] = []
    entries: list[Entry] = []
    pos = 0
    while pos < len(blob):
        assert pos % 4 == 0
        assert blob[pos:pos + 6] == b"070701", f"bad magic at {pos}"
        fields = [int(blob[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        _, mode, uid, _, _, mtime, size, _, _, rmaj, rmin, namesize, check = fields
        assert check == 0
        name_start = pos + HEADER_SIZE
        name = blob[name_start:name_start + namesize - 1].decode()
        assert blob[name_start + namesize - 1] == 0
        data_start = name_start + namesize + (-(HEADER_SIZE + namesize) % 4)
        data = blob[data_start:data_start + size]
        pos = data_start + size + (-size % 4)
        if name == TRAILER:
            archives.append(entries)
            entries = []
            continue
        entries.append(Entry(name, mode, mtime, (rmaj, rmin), data, uid))
    assert not entries, "archive without trailer"
    return archives


def test_entries_round_trip() -> None:
    stream = io.BytesIO()
    writer = CpioWriter(stream)
    writer.add_directory("etc", 0o755, mtime=100)
    writer.add_file("etc/hostname", b"arm64host\n", 0o644, mtime=200)
    writer.add_file("init", b"#!/bin/sh\n", 0o755)
    writer.add_symlink("bin", "usr/bin", mtime=300)
    writer.add_char_device("dev/console", 5, 1)
    writer.add_file("empty", b"")
    writer.finish()
    [entries] = read_newc(stream.getvalue())
    by_name = {e.name: e for e in entries}
    assert [e.name for e in entries] == ["etc", "etc/hostname", "init", "bin", "dev/console",
                                         "empty"]
    assert stat.S_ISDIR(by_name["etc"].mode) and by_name["etc"].mtime == 100
    assert by_name["etc/hostname"].data == b"arm64host\n"
    assert stat.S_IMODE(by_name["init"].mode) == 0o755
    assert stat.S_ISLNK(by_name["bin"].mode) and by_name["bin"].data == b"usr/bin"
    assert stat.S_ISCHR(by_name["dev/console"].mode)
    assert by_name["dev/console"].rdev == (5, 1)
    assert by_name["empty"].data == b""
    assert all(e.uid == 0 for e in entries)


def test_tree_round_trip_with_prefix(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "a.pyc").write_bytes(b"\x01" * 5)
    (root / "usr" / "bin").mkdir()
    (root / "usr" / "bin" / "tool").write_bytes(b"x" * 4097)
    (root / "usr" / "bin" / "tool").chmod(0o755)
    os.symlink("tool", root / "usr" / "bin" / "alias")
    stream = io.BytesIO()
    writer = CpioWriter(stream)
    count = writer.add_tree(root, prefix="var/cache")
    writer.finish()
    [entries] = read_newc(stream.getvalue())
    names = [e.name for e in entries]
    assert count == len(entries) == 6
    assert names.index("var/cache/usr") < names.index("var/cache/usr/bin") \
        < names.index("var/cache/usr/bin/tool")
    tool = next(e for e in entries if e.name == "var/cache/usr/bin/tool")
    assert tool.data == b"x" * 4097 and stat.S_IMODE(tool.mode) == 0o755
    alias = next(e for e in entries if e.name == "var/cache/usr/bin/alias")
    assert alias.data == b"tool"


def test_concatenated_archives_read_back_in_order() -> None:
    stream = io.BytesIO()
    for name in ("first", "second"):
        writer = CpioWriter(stream)
        writer.add_file(name, name.encode() * 3)
        writer.finish()
    archives = read_newc(stream.getvalue())
    assert [[e.name for e in a] for a in archives] == [["first"], ["second"]]


def test_a_special_file_in_the_tree_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ValueError, match="special file"):
        CpioWriter(io.BytesIO()).add_tree(tmp_path)


@pytest.mark.parametrize("name", ["", "/", ".", "../etc", "a/../../b"])
def test_names_outside_the_archive_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="bad cpio entry name"):
        CpioWriter(io.BytesIO()).add_file(name, b"")


def test_duplicate_names_and_writes_after_finish_are_refused() -> None:
    writer = CpioWriter(io.BytesIO())
    writer.add_directory("dev")
    with pytest.raises(ValueError, match="duplicate cpio entry 'dev'"):
        writer.add_directory("/dev/")
    writer.finish()
    with pytest.raises(ValueError, match="already finished"):
        writer.add_file("late", b"")
