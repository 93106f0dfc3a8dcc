"""The same exception guests under tcg-unicorn and under real ``qemu-system-aarch64``.

Both run each image (``exception_guests.py``: UDF, SVC, BRK, HVC/SMC, an
unknown system register, loads and stores to unbacked physical memory, EL0
cases; with the MMU on, translation, permission and access-flag faults and
instruction aborts at EL1 and from EL0) and the records their handlers wrote
must be the same: ESR, ELR, the vector, SPSR.M, and FAR where the
architecture defines it; and ``hvc #1`` must be the same firmware call in
both. QEMU runs ``-M virt -cpu max -nographic -nic none`` with the image as
``-kernel`` (an ELF: loaded at its address, entered at EL1); its RAM is read
back with QMP ``pmemsave``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from unicorn_testlib import read_u64, require_unicorn, wait_until

require_unicorn()

from exception_guests import (  # noqa: E402
    HVC_CALLS,
    HVC_RESULTS,
    HVC_RETURNS,
    ExceptionGuest,
    Record,
    access_guest,
    check,
    exception_guest,
    mmu_guest,
    read_records,
)
from qemu_runner import QEMU_SECONDS, qemu  # noqa: E402
from unicorn_guests import DONE, DONE_MAGIC, RESULTS, elf_image  # noqa: E402

from vcpuhp.machine import VirtMachine  # noqa: E402

MakeMachine = Callable[..., VirtMachine]
PAGE = 0x1000


def run_in_qemu(image: Path, tmp_path: Path) -> bytes:
    """Run ``image`` under qemu-system-aarch64 until it set DONE; the results page."""
    dump = tmp_path / "results.bin"
    with qemu(tmp_path, ["-kernel", str(image)]) as (_process, qmp):
        deadline = time.monotonic() + QEMU_SECONDS
        while True:
            qmp.execute("pmemsave", val=RESULTS, size=PAGE, filename=str(dump))
            page = dump.read_bytes()
            if int.from_bytes(page[DONE:DONE + 8], "little") == DONE_MAGIC:
                return page
            assert time.monotonic() < deadline, "the guest never finished under QEMU"
            time.sleep(0.02)


def run_in_unicorn(unicorn_machine: MakeMachine, image: Path) -> bytes:
    """Run ``image`` under tcg-unicorn until it set DONE; the results page."""
    machine = unicorn_machine("cpus=1,maxcpus=1", kernel=image)
    wait_until(lambda: read_u64(machine, RESULTS + DONE) == DONE_MAGIC, what="every case")
    assert machine.memory is not None
    return machine.memory.read(RESULTS, PAGE)


def u64_of(page: bytes) -> Callable[[int], int]:
    return lambda addr: int.from_bytes(page[addr - RESULTS:addr - RESULTS + 8], "little")


def comparable(guest: ExceptionGuest, records: list[Record]) -> dict[str, tuple[str, ...]]:
    """What both must agree on, case by case (FAR only where the architecture defines it)."""
    out = {}
    for (name, want), record in zip(guest.expected.items(), records, strict=True):
        row = (hex(record.esr), hex(record.elr), str(record.vector), str(record.spsr & 0xF))
        out[name] = row + ((hex(record.far),) if want.far is not None else ())
    return out


@pytest.mark.requires_tool("qemu-system-aarch64", "qemu-system-arm")
@pytest.mark.parametrize("build", [exception_guest, mmu_guest, access_guest],
                         ids=["mmu-off", "mmu-on", "access-forms"])
def test_the_handler_sees_what_it_sees_under_qemu(
    unicorn_machine: MakeMachine, tmp_path: Path, build: Callable[[], ExceptionGuest]
) -> None:
    guest = build()
    image = tmp_path / "guest.elf"
    image.write_bytes(elf_image(guest.program.assemble()))
    qemu_page = run_in_qemu(image, tmp_path)
    qemu = read_records(u64_of(qemu_page), len(guest.cases))
    assert check(guest, qemu) == {}, "QEMU disagrees with the expected values themselves"
    our_page = run_in_unicorn(unicorn_machine, image)
    ours = read_records(u64_of(our_page), len(guest.cases))
    assert comparable(guest, ours) == comparable(guest, qemu)
    if build is exception_guest:  # what hvc #1 returned: the same firmware answers
        calls = [u64_of(page)(RESULTS + HVC_RESULTS + 8 * n) for n in range(len(HVC_CALLS))
                 for page in (qemu_page, our_page)]
        assert calls == [value for value in HVC_RETURNS for _ in range(2)]
