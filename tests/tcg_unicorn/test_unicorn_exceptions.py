"""Synchronous exceptions reach the guest's vector table with the Arm ARM's syndrome.

A hand-assembled guest takes one exception per case; its handler records
what it sees (ESR_EL1, ELR_EL1, FAR_EL1, SPSR_EL1, the vector) and returns
to the next case. The expected values are QEMU's for ``-M virt -cpu max``
without EL2/EL3 (UNDEFINED HVC/SMC, no ISS for aborts taken to EL1).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from unicorn_testlib import read_u64, require_unicorn, wait_until

require_unicorn()

import a64asm as a  # noqa: E402
from unicorn_guests import BASE, DONE, DONE_MAGIC, RESULTS, write_image  # noqa: E402

from vcpuhp import events as ev  # noqa: E402
from vcpuhp.machine import RunState, VirtMachine  # noqa: E402

MakeMachine = Callable[..., VirtMachine]
ESR_EL1 = (3, 0, 5, 2, 0)
ELR_EL1 = (3, 0, 4, 0, 1)
FAR_EL1 = (3, 0, 6, 0, 0)
SPSR_EL1 = (3, 0, 4, 0, 0)
RECORDS = 0x100
"""Each case's record: ESR, ELR, FAR, SPSR, vector index at RESULTS + 0x100 + 64 * case."""
UNBACKED = 0x1000
EL0_CODE = 0x800
"""Offset from BASE of the code the EL0 cases run."""

SVC_42 = 0xD4000001 | 0x42 << 5
BRK_7 = 0xD4200000 | 7 << 5
STR_X2_X1 = a.str64(2, 1)


def case_insns() -> dict[str, list[int]]:
    return {
        "udf": [a.UDF],
        "svc": [SVC_42],
        "brk": [BRK_7],
        "hvc #1": [a.hvc(1)],
        "smc": [a.SMC_0],
        "unknown sysreg": [a.mrs(0, 3, 1, 15, 15, 7)],
        "load from unbacked PA": [*a.mov64(1, UNBACKED + 8), a.ldr(2, 1)],
        # A skipped store lets the rest of its block run: end the block right after it.
        "store to unbacked PA": [*a.mov64(1, UNBACKED), STR_X2_X1, 0x14000001],
    }


#: case -> (ESR, ELR is the faulting instruction (True) or the next one, FAR, vector index)
EXPECTED: dict[str, tuple[int, bool, int | None, int]] = {
    "udf": (0x0200_0000, True, None, 4),
    "svc": (0x5600_0042, False, None, 4),
    "brk": (0xF200_0007, True, None, 4),
    "hvc #1": (0x0200_0000, True, None, 4),
    "smc": (0x0200_0000, True, None, 4),
    "unknown sysreg": (0x0200_0000, True, None, 4),
    "load from unbacked PA": (0x9600_0010, True, UNBACKED + 8, 4),
    "store to unbacked PA": (0x9600_0050, True, UNBACKED, 4),
    "svc from EL0": (0x5600_0001, False, None, 8),
    "udf from EL0": (0x0200_0000, True, None, 8),
}


def exception_guest() -> tuple[a.Program, dict[str, int]]:
    """Run every case; returns the program and each case's faulting instruction address."""
    p = a.Program(BASE)
    p(a.mov64(9, RESULTS), a.mov64(23, RESULTS + RECORDS - 64))
    p.mov_label(2, "vectors")(a.msr(*a.VBAR_EL1, 2), a.ISB)
    p(a.mov64(3, BASE + 0x10_0000), 0x9100007F)  # sp = BASE + 1 MiB (SP_EL1)
    faulting: dict[str, int] = {}
    for n, (name, insns) in enumerate(case_insns().items()):
        p(a.add_imm(23, 23, 64)).mov_label(20, f"after{n}")
        last = len(insns) - (2 if insns[-1] == 0x14000001 else 1)  # b . + 4
        p(insns[:last])
        faulting[name] = p.base + 4 * len(p.words)
        p(insns[last:]).label(f"after{n}")
    # EL0: eret to EL0t code that makes an svc, then an udf
    for n, (name, insn) in enumerate((("svc from EL0", 0xD4000021), ("udf from EL0", a.UDF))):
        p(a.add_imm(23, 23, 64)).mov_label(20, f"el0after{n}")
        p(a.movz(10, 0), a.msr(*SPSR_EL1, 10)).mov_label(10, f"el0code{n}")
        p(a.msr(*ELR_EL1, 10), a.ERET)
        p.label(f"el0code{n}")
        faulting[name] = p.base + 4 * len(p.words)
        p(insn).label(f"el0spin{n}").b(f"el0spin{n}")
        p.label(f"el0after{n}")
    p(a.movz(5, DONE_MAGIC), a.str64(5, 9, DONE)).label("idle")(a.WFI).b("idle")
    p.align(2048).label("vectors")
    for vector in range(16):
        p(a.movz(10, vector), a.str64(10, 23, 32)).b("handler").align(0x80)
    p.label("handler")
    for offset, reg in ((0, ESR_EL1), (8, ELR_EL1), (16, FAR_EL1), (24, SPSR_EL1)):
        p(a.mrs(10, *reg), a.str64(10, 23, offset))
    p(a.movz(10, 0x3C5), a.msr(*SPSR_EL1, 10), a.msr(*ELR_EL1, 20), a.ERET)
    return p, faulting


def test_each_synchronous_exception_enters_the_vector_with_the_architected_syndrome(
    unicorn_machine: MakeMachine, tmp_path: Path
) -> None:
    program, faulting = exception_guest()
    machine = unicorn_machine("cpus=1,maxcpus=1", kernel=write_image(tmp_path, program))
    wait_until(lambda: read_u64(machine, RESULTS + DONE) == DONE_MAGIC, what="every case")
    seen = {}
    for n, name in enumerate(EXPECTED):
        record = RESULTS + RECORDS + 64 * n
        esr, elr, far, spsr, vector = (read_u64(machine, record + 8 * i) for i in range(5))
        seen[name] = (esr, elr, far, spsr & 0xF, vector)
    for name, (esr, at_insn, far, vector) in EXPECTED.items():
        where = faulting[name] if at_insn else faulting[name] + 4
        got_esr, got_elr, got_far, got_mode, got_vector = seen[name]
        assert (hex(got_esr), hex(got_elr), got_vector) == (hex(esr), hex(where), vector), name
        if far is not None:
            assert got_far == far, name
        assert got_mode == (0b0000 if "EL0" in name else 0b0101), name  # SPSR.M: EL0t / EL1h
    stats = machine.backend_stats()
    assert stats["total_exceptions_delivered"] == len(EXPECTED)
    assert stats["total_faults"] == 0


def test_a_fault_that_leaves_no_cpu_running_is_a_guest_panic(
    unicorn_machine: MakeMachine, tmp_path: Path
) -> None:
    program = a.Program(BASE)(a.UDF)  # no vector table: the exception cannot be delivered
    panics: list[ev.MachineEvent] = []
    machine = unicorn_machine("cpus=1,maxcpus=2", kernel=write_image(tmp_path, program))
    machine.events.subscribe(lambda e: panics.append(e) if e.name == ev.GUEST_PANICKED else None)
    wait_until(lambda: machine.run_state is RunState.GUEST_PANICKED, what="guest-panicked")
    assert machine.query_status() == {"running": False, "status": "guest-panicked"}
    wait_until(lambda: bool(panics), what="GUEST_PANICKED")
    assert panics[0].data["action"] == "pause"
    assert panics[0].data["info"]["type"] == "vcpu-fault"
    assert panics[0].data["info"]["cpu-index"] == 0
    assert "cannot deliver undefined instruction" in panics[0].data["info"]["message"]


@pytest.mark.parametrize(("on_crash", "status"), [("poweroff", 1)])
def test_vcpuhp_run_exits_non_zero_when_the_guest_panics(
    tmp_path: Path, on_crash: str, status: int
) -> None:
    import subprocess
    import sys

    image = write_image(tmp_path, a.Program(BASE)(a.UDF))
    done = subprocess.run(
        [sys.executable, "-m", "vcpuhp", "run", "--accel", "tcg-unicorn", "--smp", "1",
         "--kernel", str(image), "--monitor", "none", "--on-crash", on_crash],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == status, done.stderr
    assert "event GUEST_PANICKED" in done.stdout
    assert "GUEST_PANICKED" in done.stderr
