"""Kernel modules: .modinfo from the ELF, dependency order, built-ins, compressed files."""

from __future__ import annotations

import lzma
import struct
from pathlib import Path

import pytest

from arm64host.errors import ImageFormatError
from arm64host.kmod import ModuleTree, dependencies, module_name, parse_modinfo


def make_module(*modinfo: str) -> bytes:
    """A minimal ELF64 relocatable object with a .modinfo and a .shstrtab section."""
    info = b"".join(entry.encode() + b"\0" for entry in modinfo)
    names = b"\0.modinfo\0.shstrtab\0"
    info_offset = 64
    names_offset = info_offset + len(info)
    shoff = (names_offset + len(names) + 7) & ~7
    sections = [
        struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        struct.pack("<IIQQQQIIQQ", 1, 1, 2, 0, info_offset, len(info), 0, 0, 1, 0),
        struct.pack("<IIQQQQIIQQ", 10, 3, 0, 0, names_offset, len(names), 0, 0, 1, 0),
    ]
    ident = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    header = struct.pack("<16sHHIQQQIHHHHHH", ident, 1, 183, 1, 0, 0, shoff, 0, 64, 0, 0,
                         64, len(sections), 2)
    body = header + info + names
    return body + b"\0" * (shoff - len(body)) + b"".join(sections)


def test_modinfo_entries_and_dependencies() -> None:
    elf = make_module("license=GPL", "depends=9pnet,netfs", "alias=fs-9p", "alias=9p",
                      "name=9p")
    info = parse_modinfo(elf)
    assert info["alias"] == ["fs-9p", "9p"]
    assert info["name"] == ["9p"]
    assert dependencies(info) == ["9pnet", "netfs"]
    assert dependencies(parse_modinfo(make_module("depends="))) == []


def test_a_file_that_is_not_a_module_is_refused() -> None:
    with pytest.raises(ImageFormatError, match="not an ELF"):
        parse_modinfo(b"MZ" + b"\0" * 100)
    no_modinfo = make_module().replace(b".modinfo", b".notinfo")
    with pytest.raises(ImageFormatError, match=r"no \.modinfo section"):
        parse_modinfo(no_modinfo)
    with pytest.raises(ImageFormatError, match="truncated or malformed"):
        parse_modinfo(make_module("depends=")[:100])


@pytest.mark.parametrize(("path", "name"), [
    ("kernel/fs/9p/9p.ko.xz", "9p"), ("virtio-rng.ko.gz", "virtio_rng"), ("a.ko", "a")])
def test_module_names(path: str, name: str) -> None:
    assert module_name(path) == name


def write_tree(root: Path, modules: dict[str, str], builtin: list[str]) -> Path:
    release = root / "6.12.0-arm64"
    for name, depends in modules.items():
        path = release / "kernel" / "fs" / f"{name}.ko.xz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(lzma.compress(make_module(f"depends={depends}", f"name={name}")))
    (release / "modules.builtin").write_text("".join(f"kernel/{b}.ko\n" for b in builtin))
    return release


def test_load_order_puts_dependencies_first_and_skips_builtins(tmp_path: Path) -> None:
    release = write_tree(tmp_path, {"9p": "9pnet,netfs", "9pnet_virtio": "9pnet,virtio_ring",
                                    "9pnet": "", "netfs": ""}, builtin=["virtio_ring"])
    order = ModuleTree(release).load_order(["9p", "9pnet_virtio"])
    assert [m.name for m in order] == ["9pnet", "netfs", "9p", "9pnet_virtio"]
    assert parse_modinfo(order[0].elf)["name"] == ["9pnet"]


def test_a_missing_module_and_a_cycle_are_errors(tmp_path: Path) -> None:
    release = write_tree(tmp_path, {"a": "b", "b": "a", "c": "nowhere"}, builtin=[])
    tree = ModuleTree(release)
    with pytest.raises(ImageFormatError, match="cycle: a -> b -> a"):
        tree.load_order(["a"])
    with pytest.raises(ImageFormatError, match="'nowhere' is neither"):
        tree.load_order(["c"])
