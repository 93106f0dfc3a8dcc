"""The /chosen-only device tree, checked by dtc itself (device-tree-compiler)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vcpuhp.boot.devicetree import Chosen, chosen_dtb

DTC = shutil.which("dtc")
pytestmark = pytest.mark.requires_tool("dtc", "device-tree-compiler")


def decompile(blob: bytes, tmp_path: Path) -> str:
    path = tmp_path / "chosen.dtb"
    path.write_bytes(blob)
    assert DTC is not None
    done = subprocess.run([DTC, "-I", "dtb", "-O", "dts", str(path)], capture_output=True,
                          text=True, check=True, timeout=30)
    assert "Warning" not in done.stderr, done.stderr
    return done.stdout


def test_chosen_carries_the_efi_pointers_and_the_initrd(tmp_path: Path) -> None:
    blob = chosen_dtb(Chosen(
        bootargs="console=ttyAMA0 acpi=force", system_table=0x4010_0000,
        memory_map=0x4010_1000, memory_map_size=4 * 48, initrd=(0x4400_0000, 0x4412_3456),
    ))
    assert blob[:4] == b"\xd0\x0d\xfe\xed"
    text = decompile(blob, tmp_path)
    for line in (
        'bootargs = "console=ttyAMA0 acpi=force";',
        "linux,initrd-start = <0x00 0x44000000>;",
        "linux,initrd-end = <0x00 0x44123456>;",
        "linux,uefi-system-table = <0x00 0x40100000>;",
        "linux,uefi-mmap-start = <0x00 0x40101000>;",
        "linux,uefi-mmap-size = <0xc0>;",
        "linux,uefi-mmap-desc-size = <0x30>;",
        "linux,uefi-mmap-desc-ver = <0x01>;",
        # enum efi_secureboot_mode: 2 is "disabled" (0, "unset", makes Linux warn)
        "linux,uefi-secure-boot = <0x02>;",
    ):
        assert line in text, text
    nodes = [line.strip() for line in text.splitlines() if line.strip().endswith("{")]
    assert nodes == ["/ {", "chosen {"], "a stub tree: /chosen and nothing else"


def test_without_an_initrd_there_are_no_initrd_properties(tmp_path: Path) -> None:
    blob = chosen_dtb(Chosen(bootargs="", system_table=1 << 32, memory_map=0x4010_1000,
                             memory_map_size=48))
    text = decompile(blob, tmp_path)
    assert "initrd" not in text
    assert "linux,uefi-system-table = <0x01 0x00>;" in text
    assert "bootargs = [00];" in text  # one NUL: the empty string
