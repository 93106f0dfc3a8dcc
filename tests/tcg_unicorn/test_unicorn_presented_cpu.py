"""The CPU a vCPU presents: ID register fields as the machine has it, whatever Unicorn's
model says (``vcpuhp_tcg_unicorn.id_registers``).

A guest reads the registers with ``mrs`` at EL1, and ``CTR_EL0`` once more at EL0
with ``SCTLR_EL1.UCT`` set, and stores what it read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from unicorn_testlib import read_u64, require_unicorn, wait_until

require_unicorn()

import a64asm as a  # noqa: E402
from unicorn_guests import BASE, DONE, DONE_MAGIC, RESULTS, write_image  # noqa: E402

from vcpuhp.machine import VirtMachine  # noqa: E402
from vcpuhp_tcg_unicorn.id_registers import (  # noqa: E402
    CTR_EL0,
    ID_AA64ISAR1_EL1,
    ID_AA64PFR0_EL1,
    ID_PFR1_EL1,
)

MakeMachine = Callable[..., VirtMachine]
REGISTERS = {"ID_AA64PFR0_EL1": ID_AA64PFR0_EL1, "ID_AA64ISAR1_EL1": ID_AA64ISAR1_EL1,
             "ID_PFR1_EL1": ID_PFR1_EL1, "CTR_EL0": CTR_EL0}
READ_AT = 0x10
"""Offset of what the guest read at EL1, one u64 per register in REGISTERS' order."""
CTR_AT_EL0 = 0x80
SCTLR_UCT = 0x30D0_0800 | 1 << 15
"""SCTLR_EL1's RES1 bits, MMU off, and UCT (EL0 may read CTR_EL0)."""
EXPECTED = {
    ("ID_AA64PFR0_EL1", "EL2", 8, 4): 0, ("ID_AA64PFR0_EL1", "EL3", 12, 4): 0,
    ("ID_AA64PFR0_EL1", "GIC", 24, 4): 1, ("ID_AA64PFR0_EL1", "SVE", 32, 4): 0,
    ("ID_AA64ISAR1_EL1", "APA", 4, 4): 0, ("ID_AA64ISAR1_EL1", "API", 8, 4): 0,
    ("ID_AA64ISAR1_EL1", "GPA", 24, 4): 0, ("ID_AA64ISAR1_EL1", "GPI", 28, 4): 0,
    ("ID_PFR1_EL1", "Security", 4, 4): 0, ("ID_PFR1_EL1", "Virtualization", 12, 4): 0,
    ("ID_PFR1_EL1", "GIC", 28, 4): 1,
    ("CTR_EL0", "IDC", 28, 1): 1, ("CTR_EL0", "DIC", 29, 1): 0,
}
"""No EL2/EL3, the GICv3 system registers, no SVE or pointer authentication; no data cache
clean needed before IC IVAU, but IC IVAU needed (each engine translates for itself)."""


def id_register_guest() -> a.Program:
    p = a.Program(BASE)(a.mov64(9, RESULTS))
    for n, register in enumerate(REGISTERS.values()):
        p(a.mrs(0, *register), a.str64(0, 9, READ_AT + 8 * n))
    p(a.mov64(3, SCTLR_UCT), a.msr(*a.SCTLR_EL1, 3), a.ISB)
    p(a.movz(10, 0), a.msr(*a.SPSR_EL1, 10)).mov_label(10, "el0")(a.msr(*a.ELR_EL1, 10), a.ERET)
    p.label("el0")(a.mrs(0, *CTR_EL0), a.str64(0, 9, CTR_AT_EL0))
    p(a.movz(5, DONE_MAGIC), a.str64(5, 9, DONE)).label("spin").b("spin")
    return p


@pytest.mark.parametrize("cpu", ["cortex-a57", "max"])
def test_the_guest_reads_the_machine_s_cpu_not_unicorn_s_model(
    unicorn_machine: MakeMachine, tmp_path: Path, cpu: str
) -> None:
    machine = unicorn_machine("cpus=1,maxcpus=1", cpu=cpu,
                              kernel=write_image(tmp_path, id_register_guest()))
    wait_until(lambda: read_u64(machine, RESULTS + DONE) == DONE_MAGIC, what="the reads")
    read = {name: read_u64(machine, RESULTS + READ_AT + 8 * n)
            for n, name in enumerate(REGISTERS)}
    fields = {(register, field): read[register] >> shift & ((1 << width) - 1)
              for register, field, shift, width in EXPECTED}
    assert fields == {(register, field): value
                      for (register, field, _shift, _width), value in EXPECTED.items()}
    assert read_u64(machine, RESULTS + CTR_AT_EL0) == read["CTR_EL0"], "the same at EL0"
    assert machine.backend_stats()["total_faults"] == 0
