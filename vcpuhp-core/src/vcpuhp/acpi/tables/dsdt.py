"""The Differentiated System Description Table: a definition block of AML."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from vcpuhp.acpi.aml import Aml, Scope, TermList
from vcpuhp.acpi.tables.sdt import sdt

DSDT_REVISION: Final = 2
"""Revision 2 and up: AML integers are 64 bits wide."""


def build_dsdt(system_bus: Sequence[Aml]) -> bytes:
    r"""A DSDT whose definition block is ``Scope (\_SB) {system_bus}``."""
    return sdt(b"DSDT", DSDT_REVISION, TermList(Scope(r"\_SB", *system_bus)).encode())
