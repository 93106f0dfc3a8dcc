"""Helpers for the ACPI tests: machines, ACPICA tools, and independent table decoders.

The decoders here are written from the specs, separately from
``vcpuhp.acpi``, so the tests compare the builder against a second reading
of the same facts rather than against itself.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from vcpuhp.config import MachineConfig
from vcpuhp.machine import VirtMachine

IASL = shutil.which("iasl")
ACPIEXEC = shutil.which("acpiexec")
requires_iasl = pytest.mark.requires_tool("iasl", "acpica-tools")
requires_acpiexec = pytest.mark.requires_tool("acpiexec", "acpica-tools")

#: Topologies every ACPICA test runs on: one CPU, hot-pluggable CPUs,
#: every topology level > 1, and enough CPUs to need the high redistributor region.
TOPOLOGIES = {
    "1cpu": "1",
    "2of6": "cpus=2,maxcpus=6",
    "levels": "cpus=3,maxcpus=16,sockets=2,clusters=2,cores=2,threads=2",
    "512": "cpus=4,maxcpus=512",
}

#: What in ACPICA's output means something is wrong with a table.
PROBLEM_RE = re.compile(
    r"error|warning|invalid|incorrect|unknown|unsupported|exception|fail|abort|"
    r"terminates|could not|cannot|unable|\bAE_|\*\*\*\*",
    re.IGNORECASE,
)


def make_machine(smp: str, **kwargs: Any) -> VirtMachine:
    """An unrealized machine on the null backend."""
    return VirtMachine(MachineConfig.build(smp, accel="null", **kwargs))


def run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run an ACPICA tool, capturing text output."""
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def problems(text: str) -> list[str]:
    """The lines of ``text`` that report a problem."""
    return [line for line in text.splitlines() if PROBLEM_RE.search(line)]


@dataclass
class Compiled:
    """Result of an ``iasl`` compile."""

    aml: bytes
    errors: int
    warnings: int
    remarks: int
    output: str


_SUMMARY_RE = re.compile(r"(\d+) Errors?, (\d+) Warnings?, (\d+) Remarks?")


def compile_asl(source: str, workdir: Path, name: str = "test") -> Compiled:
    """Compile ASL (or a data table source) with ``iasl -oa`` (no optimisations)."""
    assert IASL is not None
    src = workdir / f"{name}.asl"
    src.write_text(source)
    result = run([IASL, "-oa", "-p", name, src.name], workdir)
    match = _SUMMARY_RE.search(result.stdout + result.stderr)
    assert match, f"no iasl summary in:\n{result.stdout}{result.stderr}"
    errors, warnings, remarks = (int(g) for g in match.groups())
    aml_path = workdir / f"{name}.aml"
    aml = aml_path.read_bytes() if aml_path.exists() else b""
    return Compiled(aml, errors, warnings, remarks, result.stdout + result.stderr)


def compile_terms(asl: str, workdir: Path) -> bytes:
    """Compile ASL terms inside a definition block; return the AML after the header."""
    source = f'DefinitionBlock ("", "SSDT", 2, "VCPUHP", "TEST", 1)\n{{\n{asl}\n}}\n'
    compiled = compile_asl(source, workdir)
    assert compiled.errors == 0, compiled.output
    return compiled.aml[36:]


@dataclass
class Disassembly:
    """``iasl -d`` of one table."""

    dsl: str
    output: str
    returncode: int


def disassemble(path: Path) -> Disassembly:
    """Disassemble a raw table file next to it."""
    assert IASL is not None
    result = run([IASL, "-d", path.name], path.parent)
    dsl_path = path.with_suffix(".dsl")
    dsl = dsl_path.read_text() if dsl_path.exists() else ""
    return Disassembly(dsl, result.stdout + result.stderr, result.returncode)


# -- MADT ---------------------------------------------------------------------------------


@dataclass
class Gicc:
    """The fields of a MADT GICC entry the tests check."""

    interface: int
    uid: int
    flags: int
    perf_gsiv: int
    vgic_gsiv: int
    gicr_base: int
    mpidr: int
    length: int


@dataclass
class Madt:
    """A decoded MADT."""

    revision: int
    giccs: list[Gicc] = field(default_factory=list)
    gicds: list[tuple[int, int]] = field(default_factory=list)
    """``(base, version)``."""
    gicrs: list[tuple[int, int]] = field(default_factory=list)
    """``(base, length)``."""


def decode_gicc(entry: bytes) -> Gicc:
    """Decode a GICC structure (MADT subtable type 0xB) at the standard offsets."""
    assert entry[0] == 0x0B
    length = entry[1]
    interface, uid, flags = struct.unpack_from("<III", entry, 4)
    (perf,) = struct.unpack_from("<I", entry, 20)
    (vgic,) = struct.unpack_from("<I", entry, 56)
    gicr, mpidr = struct.unpack_from("<QQ", entry, 60)
    return Gicc(interface, uid, flags, perf, vgic, gicr, mpidr, length)


def decode_madt(table: bytes) -> Madt:
    """Decode a MADT the way the bundled guest walks it."""
    assert table[:4] == b"APIC"
    madt = Madt(revision=table[8])
    offset = 44
    while offset < len(table):
        kind, length = table[offset], table[offset + 1]
        assert length >= 2 and offset + length <= len(table), f"bad subtable at {offset}"
        entry = table[offset : offset + length]
        if kind == 0x0B:
            madt.giccs.append(decode_gicc(entry))
        elif kind == 0x0C:
            madt.gicds.append((struct.unpack_from("<Q", entry, 8)[0], entry[20]))
        elif kind == 0x0E:
            madt.gicrs.append(struct.unpack_from("<QI", entry, 4))
        else:
            raise AssertionError(f"unexpected MADT subtable type {kind:#x}")
        offset += length
    return madt


# -- PPTT ---------------------------------------------------------------------------------


@dataclass
class PpttNode:
    """A processor hierarchy node."""

    offset: int
    flags: int
    parent: int
    acpi_id: int


def decode_pptt(table: bytes) -> dict[int, PpttNode]:
    """Processor hierarchy nodes by their offset in the table."""
    assert table[:4] == b"PPTT"
    nodes = {}
    offset = 36
    while offset < len(table):
        kind, length = table[offset], table[offset + 1]
        assert kind == 0 and length >= 20, f"unexpected PPTT node at {offset}"
        flags, parent, acpi_id, private = struct.unpack_from("<IIII", table, offset + 4)
        assert length == 20 + 4 * private
        nodes[offset] = PpttNode(offset, flags, parent, acpi_id)
        offset += length
    return nodes


# -- AML ----------------------------------------------------------------------------------


def _pkg_length(data: bytes, pos: int) -> tuple[int, int]:
    """``(value, bytes used)`` of the PkgLength at ``pos``."""
    lead = data[pos]
    extra = lead >> 6
    if extra == 0:
        return lead & 0x3F, 1
    value = lead & 0x0F
    for n in range(extra):
        value |= data[pos + 1 + n] << (4 + 8 * n)
    return value, extra + 1


def _name_string(data: bytes, pos: int) -> tuple[str, int]:
    prefix = ""
    while data[pos] in (0x5C, 0x5E):
        prefix += chr(data[pos])
        pos += 1
    lead = data[pos]
    if lead == 0x00:
        return prefix, pos + 1
    if lead == 0x2E:
        count, pos = 2, pos + 1
    elif lead == 0x2F:
        count, pos = data[pos + 1], pos + 2
    else:
        count = 1
    segs = [
        data[pos + 4 * n : pos + 4 * n + 4].decode().rstrip("_") or "_" for n in range(count)
    ]
    return prefix + ".".join(segs), pos + 4 * count


def _data_object(data: bytes, pos: int) -> tuple[object, int]:
    op = data[pos]
    if op in (0x00, 0x01):
        return op, pos + 1
    if op == 0xFF:
        return (1 << 64) - 1, pos + 1
    widths = {0x0A: 1, 0x0B: 2, 0x0C: 4, 0x0E: 8}
    if op in widths:
        width = widths[op]
        return int.from_bytes(data[pos + 1 : pos + 1 + width], "little"), pos + 1 + width
    if op == 0x0D:
        end = data.index(b"\0", pos + 1)
        return data[pos + 1 : end].decode(), end + 1
    if op in (0x11, 0x12):
        length, used = _pkg_length(data, pos + 1)
        end = pos + 1 + length
        if op == 0x12:
            return ("package", data[pos + 1 + used : end]), end
        size, start = _data_object(data, pos + 1 + used)
        assert isinstance(size, int)
        return data[start : start + size], end
    raise AssertionError(f"unexpected data object opcode {op:#x} at {pos}")


def aml_namespace(aml: bytes) -> dict[str, object]:
    r"""Decode the declarative part of a definition block into ``{path: value}``.

    Scopes and devices are walked; names map to their value, methods to
    ``("method", argument count)``, regions, fields and mutexes to their kind.
    Anything else at declaration level fails the test.
    """
    found: dict[str, object] = {}

    def join(scope: str, name: str) -> str:
        if name.startswith("\\"):
            return name
        return f"{scope}.{name}" if scope != "\\" else f"\\{name}"

    def walk(start: int, end: int, scope: str) -> None:
        pos = start
        while pos < end:
            op = aml[pos]
            if op == 0x10 or (op == 0x5B and aml[pos + 1] == 0x82):
                opsize = 1 if op == 0x10 else 2
                length, used = _pkg_length(aml, pos + opsize)
                block_end = pos + opsize + length
                name, body = _name_string(aml, pos + opsize + used)
                path = join(scope, name)
                if op != 0x10:
                    found[path] = "device"
                walk(body, block_end, path)
                pos = block_end
            elif op == 0x14:
                length, used = _pkg_length(aml, pos + 1)
                name, after = _name_string(aml, pos + 1 + used)
                found[join(scope, name)] = ("method", aml[after] & 7)
                pos = pos + 1 + length
            elif op == 0x08:
                name, after = _name_string(aml, pos + 1)
                value, pos = _data_object(aml, after)
                found[join(scope, name)] = value
            elif op == 0x5B and aml[pos + 1] == 0x80:
                name, after = _name_string(aml, pos + 2)
                _, after = _data_object(aml, after + 1)
                _, pos = _data_object(aml, after)
                found[join(scope, name)] = "region"
            elif op == 0x5B and aml[pos + 1] == 0x81:
                length, _ = _pkg_length(aml, pos + 2)
                pos = pos + 2 + length
            elif op == 0x5B and aml[pos + 1] == 0x01:
                name, after = _name_string(aml, pos + 2)
                found[join(scope, name)] = "mutex"
                pos = after + 1
            else:
                raise AssertionError(f"unexpected AML opcode {op:#x} at {pos} in {scope}")

    walk(36, len(aml), "\\")
    return found


def eisa_text(value: int) -> str:
    """Decode a compressed EISA id."""
    raw = value.to_bytes(4, "little")
    vendor = (raw[0] << 8) | raw[1]
    letters = "".join(chr(((vendor >> shift) & 0x1F) + ord("A") - 1) for shift in (10, 5, 0))
    return f"{letters}{raw[2]:02X}{raw[3]:02X}"
