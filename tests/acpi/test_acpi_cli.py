"""``vcpuhp acpi dump`` through the subcommand this package registers."""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from acpi_testlib import aml_namespace, decode_madt

from vcpuhp.acpi.cli import add_subcommand
from vcpuhp.errors import TopologyError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vcpuhp")
    add_subcommand(parser.add_subparsers(dest="command", required=True))
    return parser


def test_dump_writes_one_file_per_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tables"
    args = _parser().parse_args(
        ["acpi", "dump", "--smp", "cpus=2,maxcpus=6", "--cpu", "cortex-a57", "-o", str(out)]
    )
    assert args.func(args, None) == 0
    names = {"rsdp", "xsdt", "facp", "dsdt", "apic", "gtdt", "spcr", "pptt"}
    assert {p.name for p in out.iterdir()} == {f"{n}.dat" for n in names}
    *printed, hint = capsys.readouterr().out.splitlines()
    assert hint.startswith("disassemble the tables (not rsdp.dat")
    assert sorted(Path(line.split()[0]).name for line in printed) == sorted(
        f"{n}.dat" for n in names
    )
    madt = decode_madt((out / "apic.dat").read_bytes())
    assert [g.flags for g in madt.giccs] == [1, 1, 8, 8, 8, 8]


@pytest.mark.parametrize(("flag", "ejectable"), [([], [2, 3]), (["--allow-cold-unplug"],
                                                                 [1, 2, 3])])
def test_allow_cold_unplug_gives_cold_cpus_ej0(
    tmp_path: Path, flag: list[str], ejectable: list[int]
) -> None:
    args = _parser().parse_args(["acpi", "dump", "--smp", "cpus=2,maxcpus=4", *flag,
                                 "-o", str(tmp_path)])
    args.func(args, None)
    namespace = aml_namespace((tmp_path / "dsdt.dat").read_bytes())
    found = [i for i in range(4) if f"\\_SB.CPUS.C{i:03X}._EJ0" in namespace]
    assert found == ejectable


def test_dump_needs_an_output_directory_and_a_valid_topology(tmp_path: Path) -> None:
    parser = _parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["acpi", "dump"])
    with pytest.raises(SystemExit):
        parser.parse_args(["acpi"])
    args = parser.parse_args(["acpi", "dump", "--smp", "cpus=3,maxcpus=2", "-o", str(tmp_path)])
    with pytest.raises(TopologyError, match="maxcpus"):
        args.func(args, None)


def test_the_vcpuhp_command_offers_acpi_dump(tmp_path: Path) -> None:
    cli = pytest.importorskip("vcpuhp.cli")
    assert cli.main(["acpi", "dump", "--smp", "1", "-o", str(tmp_path)]) == 0
    assert (tmp_path / "dsdt.dat").is_file()


def test_the_printed_iasl_command_disassembles_every_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 8, item 11: the help promised ``iasl -d DIR/*.dat``, which fails on the RSDP."""
    if shutil.which("iasl") is None:
        pytest.skip("iasl is not installed (Debian package acpica-tools)")
    out = tmp_path / "tables"
    args = _parser().parse_args(["acpi", "dump", "-o", str(out)])
    assert args.func(args, None) == 0
    command = capsys.readouterr().out.splitlines()[-1].split(": ", 1)[1]
    assert command.startswith("iasl -d ") and "rsdp.dat" not in command
    result = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=120,
                            check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(list(out.glob("*.dsl"))) == 7
