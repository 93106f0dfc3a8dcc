"""The Unicorn engine wrapper on its own: memory sharing, MPIDR, exceptions, IRQ entry."""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Iterator

import pytest
from unicorn_testlib import require_unicorn

require_unicorn()

import a64asm as a  # noqa: E402

from vcpuhp.errors import BackendError  # noqa: E402
from vcpuhp_tcg_unicorn.coherence import Maintenance  # noqa: E402
from vcpuhp_tcg_unicorn.engine import (  # noqa: E402
    EXCP_SMC,
    EXCP_UDEF,
    PSTATE_I,
    RESET_PSTATE,
    Engine,
    RamMapping,
)

RAM = 0x4000_0000
SIZE = 1 << 20
UART = 0x0900_0000
VECTORS = RAM + 0x1_0000
SLICE = 1_000_000


class Exits:
    """Records what the engine hands over; skips trapped instructions like the backend."""

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []
        self.engine: Engine | None = None

    def mmio_read(self, addr: int, size: int) -> int:
        self.events.append(("read", addr, size))
        return 0x5A

    def mmio_write(self, addr: int, size: int, value: int) -> None:
        self.events.append(("write", addr, size, value))

    def exception(self, intno: int) -> None:
        assert self.engine is not None
        self.events.append(("exception", intno, self.engine.pc))
        self.engine.pc += 4 if intno == EXCP_UDEF else 0

    def unmapped(self, access: int, addr: int, size: int) -> None:
        self.events.append(("unmapped", addr, size))

    def sysreg_read(self, reg: tuple[int, int, int, int, int]) -> int | None:
        return None

    def sysreg_write(self, reg: tuple[int, int, int, int, int], value: int) -> bool:
        return False

    def gic_read(self, reg: tuple[int, int, int, int, int]) -> int:
        assert self.engine is not None
        self.events.append(("gic_read", reg, self.engine.pc))
        return 0x1B

    def gic_write(self, reg: tuple[int, int, int, int, int], value: int) -> None:
        assert self.engine is not None
        self.events.append(("gic_write", reg, value, self.engine.pc))


class Ram:
    def __init__(self) -> None:
        self.buffer = mmap.mmap(-1, SIZE)
        self._anchor = ctypes.c_char.from_buffer(self.buffer)
        self.mapping = RamMapping(RAM, SIZE, ctypes.addressof(self._anchor))

    def load(self, addr: int, program: a.Program) -> None:
        data = program.assemble()
        self.buffer[addr - RAM:addr - RAM + len(data)] = data

    def u64(self, addr: int) -> int:
        return int.from_bytes(self.buffer[addr - RAM:addr - RAM + 8], "little")


@pytest.fixture
def ram() -> Iterator[Ram]:
    memory = Ram()
    yield memory
    del memory._anchor
    memory.buffer.close()


@pytest.fixture
def make_engine(ram: Ram) -> Iterator[object]:
    made: list[Engine] = []

    def make(mpidr: int = 0x8000_0000, cpu_model: str = "max",
             tb_size: int = 4 << 20, exits: Exits | None = None) -> tuple[Engine, Exits]:
        exits = exits if exits is not None else Exits()
        engine = Engine(cpu_model=cpu_model, tb_size=tb_size, ram=ram.mapping,
                        mmio=[(UART, 0x1000)], mpidr=mpidr, exits=exits)
        exits.engine = engine
        made.append(engine)
        return engine, exits

    yield make
    for engine in made:
        engine.close()


def test_each_engine_reads_its_own_mpidr_and_they_share_ram(ram: Ram, make_engine) -> None:  # type: ignore[no-untyped-def]
    program = a.Program(RAM)(a.mrs(1, *a.MPIDR_EL1), a.mov64(2, RAM + 0x800),
                             a.str64(1, 2, 0), a.WFI)
    ram.load(RAM, program)
    first, _ = make_engine(mpidr=0x8000_0003)
    second, _ = make_engine(mpidr=0x8000_0105)
    first.reset(RAM, ())
    first.run(SLICE)
    assert ram.u64(RAM + 0x800) == 0x8000_0003
    second.reset(RAM, ())
    second.run(SLICE)
    assert ram.u64(RAM + 0x800) == 0x8000_0105
    assert first.x(1) == 0x8000_0003


def test_cpu_model_and_translation_buffer_size_are_applied(make_engine) -> None:  # type: ignore[no-untyped-def]
    a72, _ = make_engine(cpu_model="cortex-a72", tb_size=8 << 20)
    assert a72.tb_size == 8 << 20
    assert (a72.uc.cpr_read(3, 0, 0, 0, 0) >> 4) & 0xFFF == 0xD08  # MIDR part: Cortex-A72
    a57, _ = make_engine(cpu_model="cortex-a57")
    assert (a57.uc.cpr_read(3, 0, 0, 0, 0) >> 4) & 0xFFF == 0xD07
    with pytest.raises(BackendError, match=r"host.*valid: cortex-a57, cortex-a72, max"):
        make_engine(cpu_model="host")


def test_reset_starts_at_el1h_with_args_and_daif_masked(make_engine) -> None:  # type: ignore[no-untyped-def]
    engine, _ = make_engine()
    engine.set_x(5, 99)
    engine.reset(RAM + 0x40, (0x1234, 0x40100000))
    assert (engine.pc, engine.x(0), engine.x(1), engine.x(5)) == (RAM + 0x40, 0x1234,
                                                                  0x40100000, 0)
    assert engine.pstate & 0x3CF == RESET_PSTATE


def test_hvc_traps_as_undefined_smc_as_smc_and_icc_accesses_complete_within_the_run(
    ram: Ram, make_engine  # type: ignore[no-untyped-def]
) -> None:
    # Unicorn has no GIC CPU interface: the engine's MRS/MSR hook hands ICC_* to the exits
    # and retires the instruction itself, so one run goes on past them to the wfi.
    program = a.Program(RAM)(a.hvc(0), a.mrs(2, *a.ICC_IAR1_EL1), a.add_imm(3, 2, 1),
                             a.msr(*a.ICC_EOIR1_EL1, 3), a.mrs(31, *a.ICC_IAR1_EL1),
                             a.SMC_0, a.WFI)
    ram.load(RAM, program)
    engine, exits = make_engine()
    engine.reset(RAM, ())
    engine.run(SLICE)
    assert exits.events == [("exception", EXCP_UDEF, RAM),
                            ("gic_read", a.ICC_IAR1_EL1, RAM + 4),
                            ("gic_write", a.ICC_EOIR1_EL1, 0x1C, RAM + 12),
                            ("gic_read", a.ICC_IAR1_EL1, RAM + 16),
                            ("exception", EXCP_SMC, RAM + 24)]
    assert (engine.x(2), engine.x(3)) == (0x1B, 0x1C)
    assert engine.pc == RAM + 28  # past the wfi


class PcOnMmio(Exits):
    """Records where PC is when an MMIO access reaches the exits."""

    def mmio_read(self, addr: int, size: int) -> int:
        assert self.engine is not None
        self.events.append(("read at", self.engine.pc))
        return 0


def test_pc_stays_exact_after_an_icc_access_was_retired_from_its_hook(
    ram: Ram, make_engine  # type: ignore[no-untyped-def]
) -> None:
    # Retiring the access writes PC from the hook; what follows in the same run (an MMIO
    # access here, an abort or a stop elsewhere) must still see PC on its own instruction.
    program = a.Program(RAM)(a.mov64(1, UART), a.mrs(2, *a.ICC_IAR1_EL1), a.add_imm(3, 3, 1),
                             a.add_imm(3, 3, 1), a.ldr32(4, 1, 0x18))
    load_at = RAM + 4 * (len(program.words) - 1)
    ram.load(RAM, program(a.WFI))
    engine, exits = make_engine(exits=PcOnMmio())
    engine.reset(RAM, ())
    engine.run(SLICE)
    assert exits.events == [("gic_read", a.ICC_IAR1_EL1, load_at - 12), ("read at", load_at)]


class MaintainInRun(Exits):
    """Does a trapped TLBI as the backend does: posts the engine's share and goes on."""

    def exception(self, intno: int) -> None:
        assert self.engine is not None
        self.events.append(("exception", intno, self.engine.pc))
        self.engine.maintenance.post(Maintenance.TLB | Maintenance.CODE)
        self.engine.apply_maintenance_and_continue_at(self.engine.pc + 4)


def test_a_trapped_maintenance_instruction_is_done_within_the_run(
    ram: Ram, make_engine  # type: ignore[no-untyped-def]
) -> None:
    # HCR_EL2.TTLB sends TLBI to the exception hook; the engine drops its TLB and its
    # translated code there and goes on past the instruction without ending the run.
    program = a.Program(RAM)(a.TLBI_VMALLE1IS, a.movz(3, 1), a.TLBI_VMALLE1IS, a.movz(4, 2),
                             a.WFI)
    ram.load(RAM, program)
    engine, exits = make_engine(exits=MaintainInRun())
    engine.reset(RAM, ())
    applied = engine.maintenance.applied
    engine.run(SLICE)
    assert exits.events == [("exception", EXCP_UDEF, RAM), ("exception", EXCP_UDEF, RAM + 8)]
    assert (engine.x(3), engine.x(4), engine.pc) == (1, 2, RAM + 20)
    assert engine.maintenance.applied == applied + 2


def test_icc_accesses_at_el0_are_undefined_and_never_reach_the_gic(
    ram: Ram, make_engine  # type: ignore[no-untyped-def]
) -> None:
    el0 = RAM + 0x100
    ram.load(RAM, a.Program(RAM)(a.mov64(1, el0), a.msr(*a.ELR_EL1, 1), a.movz(1, 0),
                                 a.msr(*a.SPSR_EL1, 1), a.ERET))
    ram.load(el0, a.Program(el0)(a.mrs(2, *a.ICC_IAR1_EL1), a.msr(*a.ICC_EOIR1_EL1, 2), a.WFI))
    engine, exits = make_engine()
    engine.reset(RAM, ())
    engine.run(SLICE)
    assert exits.events == [("exception", EXCP_UDEF, el0), ("exception", EXCP_UDEF, el0 + 4)]
    assert engine.at_el0 and engine.pc == el0 + 12  # past the wfi


def test_mmio_accesses_reach_the_exits_and_unmapped_ones_stop_with_an_error(
    ram: Ram, make_engine  # type: ignore[no-untyped-def]
) -> None:
    program = a.Program(RAM)(a.mov64(1, UART), a.ldr32(3, 1, 0x18), a.str32(3, 1, 0),
                             a.mov64(1, 0x1000), a.ldr(2, 1), a.WFI)
    ram.load(RAM, program)
    engine, exits = make_engine()
    engine.reset(RAM, ())
    with pytest.raises(Exception, match=r"UC_ERR_READ_UNMAPPED|Invalid memory read"):
        engine.run(SLICE)
    assert exits.events == [("read", UART + 0x18, 4), ("write", UART, 4, 0x5A),
                            ("unmapped", 0x1000, 8)]


class AckOnWrite(Exits):
    """Exits whose MMIO write acknowledges the interrupt (lowers the IRQ input), as the
    backend does from a hook on the vCPU's own thread."""

    def mmio_write(self, addr: int, size: int, value: int) -> None:
        super().mmio_write(addr, size, value)
        assert self.engine is not None
        self.engine.irq_line.set(False)


@pytest.mark.parametrize("spsel", [1, 0])
def test_the_irq_input_enters_the_vector_and_eret_returns_cleanly(
    ram: Ram, spsel: int
) -> None:
    # main: set VBAR and SP_EL1, select SPSel, unmask, loop in wfi;
    # vector +0x280/+0x080: count, acknowledge (an MMIO write), eret
    program = a.Program(RAM)
    program(a.mov64(2, VECTORS), a.msr(*a.VBAR_EL1, 2), a.mov64(3, RAM + 0x9000))
    program(0x9100007F)  # mov sp, x3
    program(0xD50040BF | spsel << 8)  # msr spsel, #spsel
    program(a.msr_daifclr(2)).label("loop")(a.WFI).b("loop")
    handler = a.Program(VECTORS + (0x280 if spsel else 0x080))
    handler(a.mov64(4, RAM + 0x900), a.ldr(5, 4), a.add_imm(5, 5, 1), a.str64(5, 4))
    handler(a.mov64(6, UART), a.str32(5, 6), a.ERET)
    ram.load(RAM, program)
    ram.load(handler.base, handler)
    exits = AckOnWrite()
    engine = Engine(cpu_model="max", tb_size=8 << 20, ram=ram.mapping, mmio=[(UART, 0x1000)],
                    mpidr=0, exits=exits)
    exits.engine = engine
    try:
        engine.reset(RAM, ())
        engine.run()  # ends in the wfi: IRQs unmasked, nothing pending
        before, resume_at = engine.pstate, engine.pc
        assert not before & PSTATE_I
        assert ram.u64(RAM + 0x900) == 0
        engine.irq_line.set(True)
        engine.run()  # QEMU takes the IRQ; the handler acknowledges and returns to the wfi
        assert ram.u64(RAM + 0x900) == 1
        assert not engine.irq_line.level
        assert engine.pstate == before, "eret must restore PSTATE exactly (no PSTATE.IL)"
        assert engine.pc in (resume_at, resume_at + 8)  # back in the wfi loop
    finally:
        engine.close()


class StopOnException(Exits):
    def exception(self, intno: int) -> None:
        super().exception(intno)
        assert self.engine is not None
        self.engine.stop_from_exception_hook()


def test_wfi_with_the_irq_input_up_completes_even_while_masked(ram: Ram) -> None:
    ram.load(RAM, a.Program(RAM)(a.WFI, a.movz(3, 1), a.UDF))
    exits = StopOnException()
    engine = Engine(cpu_model="max", tb_size=8 << 20, ram=ram.mapping, mmio=[], mpidr=0,
                    exits=exits)
    exits.engine = engine
    try:
        engine.reset(RAM, ())
        assert engine.irq_masked()
        engine.irq_line.set(True)
        engine.run()  # wfi falls through while the input is up (IRQs masked: not taken) ...
        assert engine.x(3) == 1
        assert exits.events == [("exception", EXCP_UDEF, RAM + 8)]
        engine.reset(RAM, ())  # ... and the input is down after a reset: wfi ends the run
        assert not engine.irq_line.level
        engine.run()
        assert (engine.pc, engine.x(3)) == (RAM + 4, 0)
    finally:
        engine.close()


def test_a_spare_engine_forgets_translations_of_code_rewritten_behind_its_back(
    ram: Ram, make_engine  # type: ignore[no-untyped-def]
) -> None:
    # Another engine (here: the host) rewrites code this engine has translated; an
    # engine only sees its own writes, so without the flush it would run the old code.
    engine, _ = make_engine()
    for value, forget in ((1, False), (2, False), (3, True)):
        ram.load(RAM, a.Program(RAM)(a.movz(3, value), a.WFI))
        if forget:
            engine.forget_translations()
        engine.reset(RAM, ())
        engine.run()
        expected = 1 if (value, forget) == (2, False) else value
        assert engine.x(3) == expected, (value, forget)


def test_close_is_idempotent_and_frees_the_engine(make_engine) -> None:  # type: ignore[no-untyped-def]
    engine, _ = make_engine()
    engine.close()
    engine.close()
    assert engine.closed


@pytest.mark.parametrize("budget", [1, 2, 3, 5, 7])
def test_slices_end_between_instructions_so_no_access_runs_twice(
    ram: Ram, make_engine, budget: int  # type: ignore[no-untyped-def]
) -> None:
    # The reason the backend runs bounded slices instead of stopping engines from
    # outside: a slice boundary is exact, so each MMIO write happens exactly once and
    # a load into its own base register is never replayed.
    pointer, target = RAM + 0x8000, RAM + 0x9000
    ram.buffer[pointer - RAM:pointer - RAM + 8] = target.to_bytes(8, "little")
    ram.buffer[target - RAM:target - RAM + 8] = (0xBAD).to_bytes(8, "little")
    program = a.Program(RAM)(a.mov64(1, UART), a.movz(5, 0))
    program.label("loop")(a.add_imm(5, 5, 1), a.str32(5, 1, 0x40), a.mov64(0, pointer),
                          a.ldr(0, 0), a.cmp_imm(5, 300)).b_cond(a.COND_LO, "loop")(a.WFI)
    ram.load(RAM, program)
    engine, exits = make_engine()
    engine.reset(RAM, ())
    for _ in range(100_000):
        engine.run(budget)
        assert engine.x(0) != 0xBAD, "ldr x0, [x0] was replayed with the loaded base"
        if engine.instruction_at(engine.pc - 4) == a.WFI:
            break
    writes = [e[3] for e in exits.events if e[0] == "write"]
    assert writes == list(range(1, 301))
