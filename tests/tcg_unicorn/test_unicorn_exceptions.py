"""Synchronous exceptions reach the guest's vector table with the Arm ARM's syndrome.

Hand-assembled guests (``exception_guests.py``) take one exception per case;
their handler records what it sees (ESR_EL1, ELR_EL1, FAR_EL1, SPSR_EL1, the
vector) and returns to the next case. The expected values are the Arm ARM's
for a machine without EL2/EL3 (UNDEFINED HVC/SMC, no ISS for aborts taken to
EL1); ``test_unicorn_vs_qemu.py`` runs the same images under QEMU.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from unicorn_testlib import read_u64, require_unicorn, wait_until

require_unicorn()

import a64asm as a  # noqa: E402
from exception_guests import (  # noqa: E402
    B_NEXT,
    HVC_CALLS,
    HVC_RESULTS,
    HVC_RETURNS,
    UNBACKED,
    ExceptionGuest,
    access_guest,
    check,
    exception_guest,
    mmu_guest,
    read_records,
)
from unicorn_guests import BASE, DONE, DONE_MAGIC, RESULTS, elf_image, write_image  # noqa: E402

from vcpuhp import events as ev  # noqa: E402
from vcpuhp import memmap  # noqa: E402
from vcpuhp.machine import RunState, VirtMachine  # noqa: E402

MakeMachine = Callable[..., VirtMachine]


def run_guest(unicorn_machine: MakeMachine, tmp_path: Path,
              guest: ExceptionGuest) -> tuple[VirtMachine, list[str]]:
    """Run ``guest`` to the end: the machine, and its records' differences from the
    expected values."""
    image = tmp_path / "guest.elf"
    image.write_bytes(elf_image(guest.program.assemble()))
    machine = unicorn_machine("cpus=1,maxcpus=1", kernel=image)
    wait_until(lambda: read_u64(machine, RESULTS + DONE) == DONE_MAGIC, what="every case")
    records = read_records(lambda addr: read_u64(machine, addr), len(guest.cases))
    stats = machine.backend_stats()
    assert stats["total_exceptions_delivered"] == len(guest.cases)
    assert stats["total_faults"] == 0
    return machine, [f"{name}: {problem}" for name, problem in check(guest, records).items()]


def test_each_synchronous_exception_enters_the_vector_with_the_architected_syndrome(
    unicorn_machine: MakeMachine, tmp_path: Path
) -> None:
    machine, problems = run_guest(unicorn_machine, tmp_path, exception_guest())
    assert problems == []
    # hvc #1 is a firmware call like hvc #0 (QEMU virt, KVM): PSCI_VERSION, NOT_SUPPORTED
    returned = [read_u64(machine, RESULTS + HVC_RESULTS + 8 * n) for n in range(len(HVC_CALLS))]
    assert returned == list(HVC_RETURNS)


def test_mmu_translation_permission_and_access_flag_faults_at_el1_and_el0(
    unicorn_machine: MakeMachine, tmp_path: Path
) -> None:
    guest = mmu_guest()
    assert {"write to a read-only page", "EL0 read of a privileged page",
            "fetch, no level-3 entry"} <= set(guest.cases)
    assert run_guest(unicorn_machine, tmp_path, guest)[1] == []


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


def test_a_store_to_unbacked_memory_aborts_with_the_registers_as_at_the_store(
    unicorn_machine: MakeMachine, tmp_path: Path
) -> None:
    # The store is skipped and the rest of its block still runs (see the backend
    # README): what ran after it must not show in the registers the handler sees, and
    # its MMIO accesses must not reach the devices.
    p = a.Program(BASE)(a.mov64(9, RESULTS)).mov_label(2, "vectors")(a.msr(*a.VBAR_EL1, 2))
    p(a.ISB, a.movz(3, 5), a.mov64(1, UNBACKED), a.mov64(5, memmap.UART.base))
    p(a.movz(4, ord("Z")), a.movz(6, ord("\n")))
    p.label("store")(a.str64(2, 1), a.add_imm(3, 3, 1), a.str32(4, 5), a.str32(6, 5))
    p(B_NEXT)  # the block ends here
    p.label("idle")(a.WFI).b("idle")
    p.align(2048).label("vectors")
    p.pad_to(p.address("vectors") + 0x200)  # current EL, SP_ELx, synchronous
    p(a.mrs(10, *a.ELR_EL1), a.str64(10, 9, 0x108), a.str64(3, 9, 0x110))
    p(a.mrs(10, *a.ESR_EL1), a.str64(10, 9, 0x118))
    p(a.movz(5, DONE_MAGIC), a.str64(5, 9, DONE)).label("park")(a.WFI).b("park")
    machine = unicorn_machine("cpus=1,maxcpus=1", kernel=write_image(tmp_path, p))
    wait_until(lambda: read_u64(machine, RESULTS + DONE) == DONE_MAGIC, what="the abort")
    assert read_u64(machine, RESULTS + 0x108) == p.address("store")
    assert read_u64(machine, RESULTS + 0x118) == 0x9600_0050
    assert read_u64(machine, RESULTS + 0x110) == 5, "x3 as it was at the store"
    machine.events.flush()
    assert "Z" not in machine.console, "a UART write after the store reached the device"


def test_loads_and_stores_fault_with_the_address_they_access_and_ldtr_checks_el0_rights(
    unicorn_machine: MakeMachine, tmp_path: Path
) -> None:
    # The backend decodes each form itself for FAR_EL1, and walks the tables with EL0's
    # permissions for LDTR/STTR at EL1 (a privileged page faults, as on hardware).
    assert run_guest(unicorn_machine, tmp_path, access_guest())[1] == []
