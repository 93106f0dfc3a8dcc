"""Guests that take one synchronous exception per case and record what their handler saw.

Each case runs with x23 pointing at its record and x20 holding where to resume;
every vector stores its index and jumps to one handler, which stores ESR_EL1,
ELR_EL1, FAR_EL1 and SPSR_EL1 and returns to x20 at EL1h. Records are at
``RESULTS + RECORDS + 64 * case``: ESR, ELR, FAR, SPSR, vector index (u64 each);
``RESULTS + DONE`` holds ``DONE_MAGIC`` once every case ran.

The same images run under tcg-unicorn and under ``qemu-system-aarch64 -M virt
-cpu max`` (``test_unicorn_vs_qemu.py``): they use nothing but RAM, the vector
table and, in :func:`mmu_guest`, their own page tables.

The expected values are the Arm ARM's for a machine without EL2 and EL3 (QEMU
``virt``): SMC is UNDEFINED, aborts taken to EL1 carry no instruction
syndrome (ISV 0). HVC is the firmware's conduit whatever its immediate (QEMU
and KVM both treat it so): :func:`exception_guest` also records what two
``hvc #1`` calls return, at ``RESULTS + HVC_RESULTS``.
"""

from __future__ import annotations

from dataclasses import dataclass

import a64asm as a
from unicorn_guests import BASE, DONE, DONE_MAGIC, RESULTS

RECORDS = 0x100
RECORD_SIZE = 64
VECTOR_SYNC_CURRENT_SPX = 4
VECTOR_SYNC_LOWER_A64 = 8
MODE_EL1H, MODE_EL0T = 0b0101, 0b0000
UNBACKED = 0xF_0000_0000
"""A physical address with nothing behind it on this machine and on QEMU's ``virt``."""
SVC_42 = 0xD4000001 | 0x42 << 5
SVC_1 = 0xD4000021
BRK_7 = 0xD4200000 | 7 << 5
B_NEXT = 0x14000001
"""``b . + 4``: ends a translation block right after the instruction before it."""
SP_TOP = BASE + 0x10_0000
HVC_RESULTS = 0x80
"""Offset of what ``hvc #1`` returned in x0 for each of :data:`HVC_CALLS`."""
PSCI_VERSION, UNKNOWN_FUNCTION = 0x8400_0000, 0x8400_FFFF
HVC_CALLS = (PSCI_VERSION, UNKNOWN_FUNCTION)
HVC_RETURNS = (0x1_0001, (1 << 64) - 1)
"""PSCI 1.1; NOT_SUPPORTED (-1)."""


@dataclass(frozen=True)
class Expected:
    """What the handler must see for one case."""

    esr: int
    elr_is_the_instruction: bool
    """``ELR_EL1`` is the faulting instruction (``False``: the one after it)."""
    far: int | None
    """``FAR_EL1`` for aborts (``None``: UNKNOWN, not compared)."""
    vector: int
    mode: int
    """``SPSR_EL1.M``: where the exception came from."""


@dataclass(frozen=True)
class Record:
    """What the handler saw."""

    esr: int
    elr: int
    far: int
    spsr: int
    vector: int


@dataclass
class ExceptionGuest:
    """A built guest: the program, each case's faulting instruction, the expectations."""

    program: a.Program
    faulting: dict[str, int]
    expected: dict[str, Expected]

    @property
    def cases(self) -> list[str]:
        """Case names in the order they run (= record order)."""
        return list(self.expected)


def read_records(read_u64: object, count: int) -> list[Record]:
    """The first ``count`` records, through ``read_u64(address)``."""
    assert callable(read_u64)
    records = []
    for n in range(count):
        base = RESULTS + RECORDS + RECORD_SIZE * n
        esr, elr, far, spsr, vector = (int(read_u64(base + 8 * i)) for i in range(5))
        records.append(Record(esr, elr, far, spsr, vector))
    return records


def _prologue(p: a.Program) -> None:
    p(a.mov64(9, RESULTS), a.mov64(23, RESULTS + RECORDS - RECORD_SIZE))
    p.mov_label(2, "vectors")(a.msr(*a.VBAR_EL1, 2), a.ISB)
    p(a.mov64(3, SP_TOP), a.mov_sp(3))


def _epilogue_and_vectors(p: a.Program) -> None:
    p(a.movz(5, DONE_MAGIC), a.str64(5, 9, DONE)).label("idle")(a.WFI).b("idle")
    p.align(2048).label("vectors")
    for vector in range(16):
        p(a.movz(10, vector), a.str64(10, 23, 32)).b("handler").align(0x80)
    p.label("handler")
    for offset, reg in ((0, a.ESR_EL1), (8, a.ELR_EL1), (16, a.FAR_EL1), (24, a.SPSR_EL1)):
        p(a.mrs(10, *reg), a.str64(10, 23, offset))
    p(a.movz(10, 0x3C5), a.msr(*a.SPSR_EL1, 10), a.msr(*a.ELR_EL1, 20), a.ERET)


def _el1_case(p: a.Program, n: int, name: str, setup: list[int], faulting: list[int],
              after: list[int], where: dict[str, int]) -> None:
    p(a.add_imm(23, 23, RECORD_SIZE)).mov_label(20, f"after{n}")
    p(setup)
    where[name] = p.base + 4 * len(p.words)
    p(faulting, after).label(f"after{n}")


def _el0_case(p: a.Program, n: int, name: str, setup: list[int], code_label: str) -> None:
    """Enter EL0 (EL0t, DAIF clear) at ``code_label`` with ``setup`` done at EL1."""
    p(a.add_imm(23, 23, RECORD_SIZE)).mov_label(20, f"el0after{n}")
    p(setup, a.movz(10, 0), a.msr(*a.SPSR_EL1, 10)).mov_label(10, code_label)
    p(a.msr(*a.ELR_EL1, 10), a.ERET).label(f"el0after{n}")


def exception_guest(unbacked: int = UNBACKED) -> ExceptionGuest:
    """Every synchronous exception class the backend delivers with the MMU off."""
    el1: dict[str, tuple[list[int], list[int], list[int], Expected]] = {
        "udf": ([], [a.UDF], [], Expected(0x0200_0000, True, None, 4, MODE_EL1H)),
        "svc": ([], [SVC_42], [], Expected(0x5600_0042, False, None, 4, MODE_EL1H)),
        "brk": ([], [BRK_7], [], Expected(0xF200_0007, True, None, 4, MODE_EL1H)),
        "smc": ([], [a.SMC_0], [], Expected(0x0200_0000, True, None, 4, MODE_EL1H)),
        "unknown sysreg": ([], [a.mrs(0, 3, 1, 15, 15, 7)], [],
                           Expected(0x0200_0000, True, None, 4, MODE_EL1H)),
        "load from unbacked PA": (a.mov64(1, unbacked + 8), [a.ldr(2, 1)], [],
                                  Expected(0x9600_0010, True, unbacked + 8, 4, MODE_EL1H)),
        # A skipped store lets the rest of its block run: end the block right after it.
        "store to unbacked PA": (a.mov64(1, unbacked), [a.str64(2, 1)], [B_NEXT],
                                 Expected(0x9600_0050, True, unbacked, 4, MODE_EL1H)),
    }
    el0 = {
        "svc from EL0": (SVC_1, Expected(0x5600_0001, False, None, 8, MODE_EL0T)),
        "udf from EL0": (a.UDF, Expected(0x0200_0000, True, None, 8, MODE_EL0T)),
    }
    p = a.Program(BASE)
    _prologue(p)
    for n, function_id in enumerate(HVC_CALLS):  # calls, not exceptions
        p(a.mov64(0, function_id), a.hvc(1), a.str64(0, 9, HVC_RESULTS + 8 * n))
    faulting: dict[str, int] = {}
    expected: dict[str, Expected] = {}
    for n, (name, (setup, insns, after, want)) in enumerate(el1.items()):
        _el1_case(p, n, name, setup, insns, after, faulting)
        expected[name] = want
    for n, (name, (_insn, want)) in enumerate(el0.items()):
        _el0_case(p, n, name, [], f"el0code{n}")
        expected[name] = want
    _epilogue_and_vectors(p)
    for n, (name, (insn, _want)) in enumerate(el0.items()):
        p.label(f"el0code{n}")
        faulting[name] = p.base + 4 * len(p.words)
        p(insn).label(f"el0spin{n}").b(f"el0spin{n}")
    return ExceptionGuest(p, faulting, expected)


# -- the MMU guest -----------------------------------------------------------------------

PAGE = 0x1000
EL0_CODE_PAGE = BASE + 0x4000
"""EL0 and EL1 may read and EL0 may execute it (AP = 0b11, UXN = 0, PXN = 1)."""
READ_ONLY_PAGE = BASE + 0x5000
"""EL1 read-only (AP = 0b10), EL0 nothing."""
PRIVILEGED_PAGE = BASE + 0x6000
"""EL1 read/write (AP = 0b00), EL0 nothing."""
UNMAPPED_PAGE = BASE + 0x7000
"""Its level-3 descriptor is invalid."""
NO_ACCESS_FLAG_PAGE = BASE + 0x8000
"""Mapped with AF = 0 (and TCR_EL1.HA = 0: the first access faults)."""
L1_TABLE, L2_TABLE, L3_TABLE = BASE + 0x9000, BASE + 0xA000, BASE + 0xB000
UNMAPPED_L1 = 0x8000_0000
"""Level-1 index 2 is invalid."""
UNMAPPED_L2 = 0x4040_0000
"""Level-2 index 2 (of the RAM gigabyte) is invalid."""
UNBACKED_WINDOW = 0xC000_0000
"""Level-1 index 3: a valid 1 GiB block onto physical 0x80000000, where nothing is
(RAM ends at 0x50000000 here and under QEMU with -m 256M)."""
UNBACKED_WINDOW_PA = 0x8000_0000

_VALID, _TABLE_OR_PAGE = 1 << 0, 1 << 1
_ATTR_DEVICE, _ATTR_NORMAL_NC = 0 << 2, 1 << 2
_AF = 1 << 10
_PXN, _UXN = 1 << 53, 1 << 54
_AP_EL1_RW, _AP_EL0_RW, _AP_EL1_RO, _AP_RO = 0b00 << 6, 0b01 << 6, 0b10 << 6, 0b11 << 6
MAIR = 0x44 << 8 | 0x00
"""Attr0 Device-nGnRnE, Attr1 Normal non-cacheable."""
TCR = 25 | 1 << 23
"""T0SZ 25 (39-bit VA: the walk starts at level 1), 4 KiB granule, TTBR1 walks off (EPD1),
IPS 0 (32-bit PA), no hardware access-flag update (HA 0)."""
SCTLR_MMU_ON = 0x30D0_0801
"""RES1 bits (29, 28, 23 SPAN, 22, 20, 11) and M; caches off, alignment checks off."""


def _l3_descriptor(page: int) -> int:
    address = BASE + PAGE * page
    normal = address | _VALID | _TABLE_OR_PAGE | _ATTR_NORMAL_NC | _AF
    special = {
        EL0_CODE_PAGE: normal | _AP_RO | _PXN,
        READ_ONLY_PAGE: normal | _AP_EL1_RO | _PXN | _UXN,
        PRIVILEGED_PAGE: normal | _AP_EL1_RW | _PXN | _UXN,
        UNMAPPED_PAGE: 0,
        NO_ACCESS_FLAG_PAGE: (normal & ~_AF) | _AP_EL1_RW | _PXN | _UXN,
    }
    return special.get(address, normal | _AP_EL1_RW | _UXN)  # EL1 code, data and stack


def page_tables() -> dict[int, list[int]]:
    """Table address -> its 512 descriptors: device gigabyte 0, RAM gigabyte 1 (2 MiB
    blocks, and 4 KiB pages for the 2 MiB at BASE), nothing else."""
    l1 = [0] * 512
    l1[0] = 0x0 | _VALID | _ATTR_DEVICE | _AF | _PXN | _UXN
    l1[1] = L2_TABLE | _VALID | _TABLE_OR_PAGE
    l1[3] = UNBACKED_WINDOW_PA | _VALID | _ATTR_NORMAL_NC | _AF | _AP_EL1_RW | _PXN | _UXN
    l2 = [0] * 512
    l2[0] = 0x4000_0000 | _VALID | _ATTR_NORMAL_NC | _AF | _AP_EL1_RW | _PXN | _UXN
    l2[1] = L3_TABLE | _VALID | _TABLE_OR_PAGE
    l3 = [_l3_descriptor(n) for n in range(512)]
    return {L1_TABLE: l1, L2_TABLE: l2, L3_TABLE: l3}


def mmu_guest() -> ExceptionGuest:
    """With the MMU on: translation faults at levels 1-3, a permission fault, an access-flag
    fault, external aborts through a valid mapping and an instruction abort at EL1; data
    and instruction aborts from EL0."""
    el1: dict[str, tuple[int, list[int], list[int], Expected]] = {
        "read, no level-1 entry": (UNMAPPED_L1 + 8, [a.ldr(2, 1)], [],
                                   Expected(0x9600_0005, True, UNMAPPED_L1 + 8, 4, MODE_EL1H)),
        "read, no level-2 entry": (UNMAPPED_L2 + 16, [a.ldr(2, 1)], [],
                                   Expected(0x9600_0006, True, UNMAPPED_L2 + 16, 4, MODE_EL1H)),
        "read, no level-3 entry": (UNMAPPED_PAGE + 16, [a.ldr(2, 1)], [],
                                   Expected(0x9600_0007, True, UNMAPPED_PAGE + 16, 4,
                                            MODE_EL1H)),
        "write to a read-only page": (READ_ONLY_PAGE + 8, [a.str64(2, 1)], [],
                                      Expected(0x9600_004F, True, READ_ONLY_PAGE + 8, 4,
                                               MODE_EL1H)),
        "read, access flag clear": (NO_ACCESS_FLAG_PAGE, [a.ldr(2, 1)], [],
                                    Expected(0x9600_000B, True, NO_ACCESS_FLAG_PAGE, 4,
                                             MODE_EL1H)),
        "read of an unbacked PA": (UNBACKED_WINDOW + 16, [a.ldr(2, 1)], [],
                                   Expected(0x9600_0010, True, UNBACKED_WINDOW + 16, 4,
                                            MODE_EL1H)),
        # FAR is the virtual address; the block ends right after the skipped store.
        "write of an unbacked PA": (UNBACKED_WINDOW + 32, [a.str64(2, 1)], [B_NEXT],
                                    Expected(0x9600_0050, True, UNBACKED_WINDOW + 32, 4,
                                             MODE_EL1H)),
    }
    el0: dict[str, tuple[int, int, Expected]] = {
        "EL0 read of a privileged page": (PRIVILEGED_PAGE, a.ldr(2, 1),
                                          Expected(0x9200_000F, True, PRIVILEGED_PAGE, 8,
                                                   MODE_EL0T)),
        "EL0 write to a read-only page": (EL0_CODE_PAGE + 0x800, a.str64(2, 1),
                                          Expected(0x9200_004F, True, EL0_CODE_PAGE + 0x800, 8,
                                                   MODE_EL0T)),
        "EL0 read, no level-3 entry": (UNMAPPED_PAGE + 8, a.ldr(2, 1),
                                       Expected(0x9200_0007, True, UNMAPPED_PAGE + 8, 8,
                                                MODE_EL0T)),
    }
    p = a.Program(BASE)
    _prologue(p)
    mmu_on(p)
    faulting: dict[str, int] = {}
    expected: dict[str, Expected] = {}
    for n, (name, (address, insns, after, want)) in enumerate(el1.items()):
        _el1_case(p, n, name, a.mov64(1, address), insns, after, faulting)
        expected[name] = want
    # An instruction abort: branch to an unmapped page (ELR = FAR = the target).
    name = "fetch, no level-3 entry"
    _el1_case(p, len(el1), name, a.mov64(1, UNMAPPED_PAGE), [a.blr(1)], [], faulting)
    faulting[name] = UNMAPPED_PAGE
    expected[name] = Expected(0x8600_0007, True, UNMAPPED_PAGE, 4, MODE_EL1H)
    for n, (name, (address, _insn, want)) in enumerate(el0.items()):
        _el0_case(p, n, name, a.mov64(1, address), f"el0code{n}")
        expected[name] = want
    name = "EL0 fetch from a privileged page"
    _el0_case(p, len(el0), name, a.mov64(1, BASE), f"el0code{len(el0)}")
    expected[name] = Expected(0x8200_000F, True, BASE, 8, MODE_EL0T)
    faulting[name] = BASE
    _epilogue_and_vectors(p)
    p.pad_to(EL0_CODE_PAGE)
    for n, (name, (_address, insn, _want)) in enumerate(el0.items()):
        p.label(f"el0code{n}")
        faulting[name] = p.base + 4 * len(p.words)
        p(insn).label(f"el0spin{n}").b(f"el0spin{n}")
    p.label(f"el0code{len(el0)}")(a.blr(1)).label("el0spin_fetch").b("el0spin_fetch")
    place_page_tables(p)
    return ExceptionGuest(p, faulting, expected)


def mmu_on(p: a.Program) -> None:
    """Turn this CPU's MMU on with :func:`page_tables` (placed by :func:`place_page_tables`)."""
    p(a.mov64(3, MAIR), a.msr(*a.MAIR_EL1, 3), a.mov64(3, TCR), a.msr(*a.TCR_EL1, 3))
    p(a.mov64(3, L1_TABLE), a.msr(*a.TTBR0_EL1, 3), a.ISB, a.TLBI_VMALLE1, a.DSB_SY, a.ISB)
    p(a.mov64(3, SCTLR_MMU_ON), a.msr(*a.SCTLR_EL1, 3), a.ISB)


def place_page_tables(p: a.Program) -> None:
    """Pad ``p`` to the tables' addresses and put :func:`page_tables` there."""
    for table, descriptors in sorted(page_tables().items()):
        p.pad_to(table)
        for descriptor in descriptors:
            p.quad(descriptor)


DC_ZVA_BLOCK = 64
"""``DCZID_EL0`` block size of every CPU model the tests use (and of QEMU ``-cpu max``)."""


def access_guest() -> ExceptionGuest:
    """With the MMU on, data aborts on the load/store forms whose address the backend must
    decode itself for ``FAR_EL1`` (offsets, index modes, pairs, ``DC ZVA``), and the
    unprivileged ``LDTR``/``STTR`` at EL1, which the MMU checks with EL0's permissions."""
    el1: dict[str, tuple[list[int], list[int], Expected]] = {
        "LDTR at EL1 of a privileged page": (
            a.mov64(1, PRIVILEGED_PAGE), [a.ldtr(2, 1, 8)],
            Expected(0x9600_000F, True, PRIVILEGED_PAGE + 8, 4, MODE_EL1H)),
        "STTR at EL1 to a page EL0 may only read": (
            a.mov64(1, EL0_CODE_PAGE + 0x800), [a.sttr(2, 1)],
            Expected(0x9600_004F, True, EL0_CODE_PAGE + 0x800, 4, MODE_EL1H)),
        "LDTR at EL1, no level-3 entry": (
            a.mov64(1, UNMAPPED_PAGE), [a.ldtr(2, 1, 0x18)],
            Expected(0x9600_0007, True, UNMAPPED_PAGE + 0x18, 4, MODE_EL1H)),
        "LDUR with a negative offset": (
            a.mov64(1, UNMAPPED_PAGE + 0x20), [a.ldur(2, 1, -8)],
            Expected(0x9600_0007, True, UNMAPPED_PAGE + 0x18, 4, MODE_EL1H)),
        "STR post-index": (
            a.mov64(1, UNMAPPED_PAGE + 0x30), [a.str_post(2, 1, 16)],
            Expected(0x9600_0047, True, UNMAPPED_PAGE + 0x30, 4, MODE_EL1H)),
        "LDP pre-index": (
            a.mov64(1, UNMAPPED_PAGE + 0x40), [a.ldp_pre(2, 3, 1, 16)],
            Expected(0x9600_0007, True, UNMAPPED_PAGE + 0x50, 4, MODE_EL1H)),
        "LDR register offset, LSL 3": (
            [*a.mov64(1, UNMAPPED_PAGE + 0x60), *a.mov64(4, 3)], [a.ldr_lsl3(2, 1, 4)],
            Expected(0x9600_0007, True, UNMAPPED_PAGE + 0x78, 4, MODE_EL1H)),
        "DC ZVA, no level-3 entry": (
            a.mov64(1, UNMAPPED_PAGE + 2 * DC_ZVA_BLOCK), [a.dc_zva(1)],
            Expected(0x9600_0047, True, UNMAPPED_PAGE + 2 * DC_ZVA_BLOCK, 4, MODE_EL1H)),
    }
    p = a.Program(BASE)
    _prologue(p)
    mmu_on(p)
    faulting: dict[str, int] = {}
    expected: dict[str, Expected] = {}
    for n, (name, (setup, insns, want)) in enumerate(el1.items()):
        _el1_case(p, n, name, setup, insns, [], faulting)
        expected[name] = want
    _epilogue_and_vectors(p)
    place_page_tables(p)
    return ExceptionGuest(p, faulting, expected)


def check(guest: ExceptionGuest, records: list[Record]) -> dict[str, str]:
    """Every difference between what the handler saw and what is expected (empty: none)."""
    problems = {}
    for (name, want), got in zip(guest.expected.items(), records, strict=True):
        elr = guest.faulting[name] + (0 if want.elr_is_the_instruction else 4)
        seen = (hex(got.esr), hex(got.elr), got.vector, got.spsr & 0xF)
        wanted = (hex(want.esr), hex(elr), want.vector, want.mode)
        if want.far is not None:
            seen += (hex(got.far),)
            wanted += (hex(want.far),)
        if seen != wanted:
            problems[name] = f"saw {seen}, expected {wanted}"
    return problems


__all__ = [
    "DC_ZVA_BLOCK", "DONE", "DONE_MAGIC", "HVC_CALLS", "HVC_RESULTS", "HVC_RETURNS", "RECORDS",
    "RECORD_SIZE", "UNBACKED", "ExceptionGuest", "Expected", "Record", "access_guest", "check",
    "exception_guest", "mmu_guest", "mmu_on", "page_tables", "place_page_tables", "read_records",
]
