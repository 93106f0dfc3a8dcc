"""The test userland's pieces that need no guest: the archive, the checks, the protocol, the
host-side console. (The guest tests run it for real.)"""

from __future__ import annotations

import gzip
import lzma
import stat
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from vcpuhp.errors import ConfigError
from vcpuhp.masks import CpuMasks
from vcpuhp.testing.linux_userland import (
    GuestDied,
    UserlandConsole,
    build_initramfs,
    check_busybox,
    read_module,
)
from vcpuhp.testing.linux_userland.__main__ import main as build_main
from vcpuhp.testing.linux_userland.build import APPLETS, KernelModule
from vcpuhp.testing.linux_userland.newc import NewcArchive
from vcpuhp.testing.linux_userland.protocol import CommandResult, command_line, parse_result

EM_AARCH64, EM_X86_64 = 183, 62


def elf(*, machine: int = EM_AARCH64, elf_type: int = 2, interpreter: bool = False,
        body: bytes = b"BusyBox v1.37.0 (test)") -> bytes:
    """A minimal 64-bit little-endian ELF with one program header (PT_INTERP or PT_LOAD)."""
    header = struct.pack("<4sBBBBB7xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, elf_type,
                         machine, 1, 0x400000, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    program = struct.pack("<IIQQQQQQ", 3 if interpreter else 1, 5, 0, 0, 0, 0, 0, 8)
    return header + program + body


def read_newc(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """name -> (mode, data, rdev) of a newc archive, checking the format as it goes."""
    entries: dict[str, tuple[int, bytes, tuple[int, int]]] = {}
    offset = 0
    while True:
        assert data[offset:offset + 6] == b"070701"
        fields = [int(data[offset + 6 + 8 * i: offset + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rdev, namesize = fields[1], fields[6], (fields[9], fields[10]), fields[11]
        name_start = offset + 110
        name = data[name_start:name_start + namesize - 1].decode()
        assert data[name_start + namesize - 1] == 0
        body = name_start + namesize + (-(110 + namesize) % 4)
        assert body % 4 == 0
        if name == "TRAILER!!!":
            assert body == len(data), "nothing after the trailer"
            return entries
        assert name not in entries
        entries[name] = (mode, data[body:body + size], rdev)
        offset = body + size + (-size % 4)


@pytest.fixture
def busybox() -> bytes:
    return elf()


def test_the_archive_is_newc_with_init_console_busybox_and_applets(busybox: bytes) -> None:
    module = KernelModule("evdev", elf(elf_type=1, body=b"name=evdev\0"))
    entries = read_newc(build_initramfs(busybox, [module]))
    mode, init, _ = entries["init"]
    assert stat.S_ISREG(mode) and mode & 0o111 and init.startswith(b"#!/bin/sh\n")
    mode, _, rdev = entries["dev/console"]
    assert stat.S_ISCHR(mode) and rdev == (5, 1), "the kernel opens it for PID 1"
    assert entries["bin/busybox"][1] == busybox
    for applet in APPLETS:
        mode, target, _ = entries[f"bin/{applet}"]
        assert stat.S_ISLNK(mode) and target == b"busybox"
    assert entries["lib/modules/00-evdev.ko"][1] == module.elf
    action_mode, action, _ = entries["etc/acpi/PWRF/00000080"]
    assert action_mode & 0o111 and b"poweroff -f" in action
    for directory in ("proc", "sys", "dev", "run", "tmp"):
        assert stat.S_ISDIR(entries[directory][0])


def test_the_same_input_gives_the_same_bytes(busybox: bytes) -> None:
    assert build_initramfs(busybox) == build_initramfs(busybox)


def test_modules_load_in_the_given_order(busybox: bytes) -> None:
    modules = [KernelModule(name, elf(elf_type=1)) for name in ("netfs", "9pnet", "9p")]
    names = sorted(n for n in read_newc(build_initramfs(busybox, modules))
                   if n.startswith("lib/modules/"))
    assert names == ["lib/modules/00-netfs.ko", "lib/modules/01-9pnet.ko",
                     "lib/modules/02-9p.ko"]
    with pytest.raises(ConfigError, match="given twice"):
        build_initramfs(busybox, [modules[0], modules[0]])


@pytest.mark.parametrize(("data", "message"), [
    (b"#!/bin/sh\n", "not an ELF file"),
    (elf(machine=EM_X86_64), "not AArch64"),
    (elf(interpreter=True), "dynamically linked"),
    (elf(elf_type=1), "not an executable"),
    (elf(body=b"hello"), "not busybox"),
])
def test_only_a_static_arm64_busybox_is_taken(data: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_busybox(data)


def test_modules_are_read_plain_xz_or_gzip_and_must_be_relocatable(tmp_path: Path) -> None:
    module = elf(elf_type=1, body=b"name=evdev\0")
    (tmp_path / "evdev.ko").write_bytes(module)
    (tmp_path / "evdev.ko.xz").write_bytes(lzma.compress(module, lzma.FORMAT_XZ))
    (tmp_path / "evdev.ko.gz").write_bytes(gzip.compress(module))
    for name in ("evdev.ko", "evdev.ko.xz", "evdev.ko.gz"):
        assert read_module(tmp_path / name) == KernelModule("evdev", module)
    (tmp_path / "broken.ko.xz").write_bytes(b"not xz")
    with pytest.raises(ConfigError, match="corrupt compressed module"):
        read_module(tmp_path / "broken.ko.xz")
    (tmp_path / "prog.ko").write_bytes(elf())
    with pytest.raises(ConfigError, match="not a relocatable object"):
        read_module(tmp_path / "prog.ko")
    with pytest.raises(ConfigError, match="not a kernel module"):
        read_module(tmp_path / "evdev.o")


def test_the_command_line_tool_writes_the_archive_or_says_what_is_wrong(
    tmp_path: Path, busybox: bytes, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "busybox").write_bytes(busybox)
    out = tmp_path / "initrd.cpio"
    assert build_main(["--busybox", str(tmp_path / "busybox"), "-o", str(out)]) == 0
    assert "init" in read_newc(out.read_bytes())
    (tmp_path / "dynamic").write_bytes(elf(interpreter=True))
    assert build_main(["--busybox", str(tmp_path / "dynamic"), "-o", str(out)]) == 2
    assert "busybox-static" in capsys.readouterr().err


def test_archive_names_must_stay_inside_it() -> None:
    archive = NewcArchive()
    for bad in ("/etc/passwd", "../x", ".", ""):
        with pytest.raises(ValueError, match="relative path"):
            archive.file(bad, b"")
    archive.file("a", b"")
    with pytest.raises(ValueError, match="duplicate"):
        archive.file("a", b"")


def test_results_round_trip_and_commands_are_checked() -> None:
    for result in (CommandResult("online", 4, True),
                   CommandResult("offline", 12, False, "write error: Device or resource busy")):
        assert parse_result(str(result)) == result
    assert parse_result("online four ok") is None
    assert parse_result("possible 0-5 present 0-5 enabled 0-3 online 0-1") is None
    assert command_line("online", 4) == "online 4\n"
    with pytest.raises(ValueError, match="valid: online, offline"):
        command_line("eject", 4)


def test_the_console_sorts_lines_and_answers_a_command() -> None:
    sent: list[str] = []

    def send(text: str) -> int:
        sent.append(text)
        return len(text)

    console = UserlandConsole(send=send)
    for line in ("klog: <4>[    0.1] something odd", "klog: <6>[    0.2] ACPI Error: bad",
                 "klog end", "[    5.0] random kernel line",
                 "possible 0-5 present 0-5 enabled 0-3 online 0-1", "userland ready"):
        console.feed(line)
    assert console.wait_ready(1) == CpuMasks.parse("possible 0-5 present 0-5 enabled 0-3 "
                                                   "online 0-1")
    assert console.wait_klog(1) == ["<4>[    0.1] something odd", "<6>[    0.2] ACPI Error: bad"]
    assert console.firmware_complaints() == ["<6>[    0.2] ACPI Error: bad"]

    answer = threading.Timer(0.05, console.feed, ["online 4 failed: write error: Invalid"])
    answer.start()
    result = console.online(4, timeout=10)
    answer.join()
    assert sent == ["online 4\n"]
    assert result == CommandResult("online", 4, False, "write error: Invalid")


def test_a_wait_names_what_arrived_and_a_panic_ends_it_at_once() -> None:
    console = UserlandConsole()
    console.feed("possible 0-5 present 0-5 enabled 0-3 online 0-1")
    with pytest.raises(TimeoutError, match="enabled 0-3 online 0-1"):
        console.wait_masks(CpuMasks.parse("possible 0-5 present 0-5 enabled 0-4 online 0-1"),
                           timeout=0.05)
    console.feed("[    9.0] Kernel panic - not syncing: Attempted to kill init!")
    with pytest.raises(GuestDied, match="the kernel panicked"):
        console.wait_masks(lambda masks: False, timeout=600)
    with pytest.raises(RuntimeError, match="only read"):
        console.online(1, timeout=1)


def test_the_linux_demo_refuses_a_backend_that_runs_no_guest_code(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vcpuhp", "demo", "--accel", "null", "--no-plugin-autoload",
         "--linux", str(tmp_path / "vmlinuz"), str(tmp_path / "initrd.cpio")],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "demo --linux needs a backend that runs guest code; 'null' does not" in done.stderr
