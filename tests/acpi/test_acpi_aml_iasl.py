"""Cross-check the AML encoder against ACPICA: compile each case's ASL with iasl."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from acpi_testlib import compile_asl, requires_iasl
from test_acpi_aml import CALL_CASES, CASES

from vcpuhp.acpi.aml import ZERO, Aml, Local, Method, Store

pytestmark = requires_iasl

#: Declarations the cases refer to; compiled alone, then with each case appended.
PRELUDE = r"""
Scope (\_SB)
{
    Device (PRES)
    {
        Name (_ADR, Zero)
        Mutex (CPLK, 0x00)
        OperationRegion (PRST, SystemMemory, 0x090C0000, 0x0C)
        Field (PRST, DWordAcc, NoLock, Preserve) {CSEL, 32, , 32, CDAT, 32}
    }
    Device (PWRB) {Name (_ADR, Zero)}
    Device (CPUS) {Name (_ADR, Zero) Device (C001) {Name (_ADR, One)}}
}
OperationRegion (PRST, SystemMemory, 0x090C0000, 0x0200)
Mutex (CPLK, 0x00)
Device (C004) {Name (_ADR, 0x04)}
"""
_DECLARATION = re.compile(r"^(Name|Scope|Device|Method|OperationRegion|Mutex|Field) ")
_EXPRESSION = re.compile(
    r"^(L[A-Za-z]+|ToInteger|SizeOf|DerefOf|And) \("
)
#: Cases iasl cannot take at the root of a definition block (a parent prefix
#: above the root, a bare Else); test_acpi_aml.py pins their bytes.
_NOT_AT_ROOT = {"Scope (^PRES) {}", "Scope (^^PRES.CSEL) {}", "Else {}"}
_INITS = "".join(f"Store (Zero, Local{n})\n" for n in range(8))


def _definition_block(body: str) -> str:
    return f'DefinitionBlock ("", "SSDT", 2, "VCPUHP", "TEST", 1)\n{{\n{body}\n}}\n'


@pytest.fixture(scope="module")
def prelude_aml(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    compiled = compile_asl(_definition_block(PRELUDE), tmp_path_factory.mktemp("prelude"))
    assert compiled.errors == 0, compiled.output
    return compiled.aml[36:]


def _in_context(asl: str, term: Aml) -> tuple[str, bytes]:
    """Wrap a case so iasl accepts it; return the ASL and our encoding of the same."""
    if _DECLARATION.match(asl):
        return asl, term.encode()
    inits = [Store(ZERO, Local(n)) for n in range(8)]
    if _EXPRESSION.match(asl):
        asl, term = f"Store ({asl}, Local7)", Store(term, Local(7))
    method = Method("TEST", 7, *inits, term)
    return f"Method (TEST, 7, NotSerialized)\n{{\n{_INITS}{asl}\n}}", method.encode()


@pytest.mark.parametrize(
    ("asl", "term"),
    [(asl, term) for asl, term, _ in CASES + CALL_CASES if asl not in _NOT_AT_ROOT],
    ids=lambda v: None,
)
def test_encoder_matches_iasl(asl: str, term: Aml, prelude_aml: bytes, tmp_path: Path) -> None:
    source, ours = _in_context(asl, term)
    compiled = compile_asl(_definition_block(PRELUDE + source), tmp_path)
    assert compiled.errors == 0, compiled.output
    assert compiled.aml[36:].startswith(prelude_aml)
    theirs = compiled.aml[36 + len(prelude_aml) :]
    assert ours.hex(" ") == theirs.hex(" "), asl


@pytest.mark.parametrize("size", [60, 61, 62, 4090, 4091])
def test_buffer_pkg_lengths_match_iasl_around_the_boundaries(size: int, tmp_path: Path) -> None:
    from vcpuhp.acpi.aml import Name

    data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    values = ", ".join(f"0x{b:02X}" for b in data)
    compiled = compile_asl(
        _definition_block(f"Name (BUF0, Buffer (0x{size:X}) {{{values}}})"), tmp_path
    )
    assert compiled.errors == 0, compiled.output
    assert compiled.aml[36:] == Name("BUF0", data).encode()
