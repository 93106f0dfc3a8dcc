"""One Unicorn AArch64 engine: the execution state of one vCPU.

The engine maps the machine's RAM (one host buffer shared by every engine,
``uc_mem_map_ptr``) and its MMIO regions (routed to a :class:`GuestExits`),
hands every MRS/MSR of a register the backend emulates (``MPIDR_EL1``, the
generic timer) and every exception Unicorn raises to the :class:`GuestExits`,
enters the guest's vector table for synchronous exceptions
(:meth:`Engine.take_exception`; Unicorn never does), and drives the CPU's IRQ
input (:attr:`Engine.irq_line`; QEMU then takes the interrupt itself, see
:mod:`~vcpuhp_tcg_unicorn.irq_line`). It knows registers and Unicorn, nothing
about threads or the machine.

Measured on Unicorn 2.1.4 (the reasons for some of what follows):

* the CPU starts at EL1h with DAIF masked, but ``SCR_EL3.RW`` is 0, which
  makes every AArch64 ``eret`` at EL1 an *illegal exception return*
  (``PSTATE.IL`` set, EL1t becomes EL1h); the engine sets ``SCR_EL3.RW``;
* ``MPIDR_EL1`` reads 0x80000000 on every engine and cannot be written (nor
  through ``VMPIDR_EL2``), so an MRS hook supplies it;
* an MRS/MSR hook that returns "handled" for a register Unicorn implements
  skips the access and Unicorn moves on. For one it does not implement (the
  GIC CPU interface, ``ICC_*``: Unicorn has no GIC) the instruction ends its
  translation block and would run again forever, so the hook retires it
  itself: it writes the result and PC past it in one ``uc_reg_write_batch``.
  That call, unlike ``uc_reg_write``, sets only ``quit_request`` (leave this
  block, go on at the new PC, within the same run) and not
  ``skip_sync_pc_on_exit``, which would stay set and leave PC stale at the
  next block-boundary stop. The access costs a hook (~8 us), not the end and
  restart of a run (60-100 us);
* writing ``PSTATE`` through ``reg_write`` does not recompute the cached
  translation flags (current EL, MMU index); a ``CP_REG`` write does, so an
  exception entry writes ``SPSR_EL1`` *after* ``PSTATE``;
* ``svc`` reaches the interrupt hook with PC after it, ``brk`` and UNDEFINED
  instructions with PC on them, ``smc`` with PC after it; an access to an
  unbacked physical address ends ``emu_start`` with ``UC_ERR_*_UNMAPPED``
  after the invalid-memory hook saw the physical address, PC on the access;
* the translation buffer size (``UC_CTL_TCG_BUFFER_SIZE``) only takes
  effect when set before the engine initialises (its first mapping);
* **the stop hazard**: Unicorn checks for a pending stop after every guest
  load and store and then restores PC to that instruction although it
  already executed, so a stop landing there replays the access (an MMIO
  write twice; ``ldr x0, [x0]`` with a clobbered base).
  :mod:`~vcpuhp_tcg_unicorn.stops` switches that check off, which leaves
  only the exact check at the start of each translation block: then
  :meth:`Engine.request_stop` may be called from any thread, and
  :meth:`Engine.run` needs no instruction budget. If that is not possible,
  runs are bounded by an instruction count instead (exact, about 5x slower).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from vcpuhp.errors import BackendError
from vcpuhp.gic import ICC_SYSREGS
from vcpuhp_tcg_unicorn.binding import UcError, arm64, unicorn
from vcpuhp_tcg_unicorn.binding import const as unicorn_const
from vcpuhp_tcg_unicorn.coherence import Maintenance, MaintenanceInbox
from vcpuhp_tcg_unicorn.id_registers import EL0_READABLE, presented_id_registers
from vcpuhp_tcg_unicorn.irq_line import IrqLine
from vcpuhp_tcg_unicorn.mmu import PSTATE_PAN, Regime
from vcpuhp_tcg_unicorn.stops import enable_block_boundary_stops
from vcpuhp_tcg_unicorn.syndrome import VECTOR_SYNC, SyncException, vector_base_offset

PSTATE_I: Final = 1 << 7
PSTATE_DAIF: Final = 0xF << 6
PSTATE_NZCV: Final = 0xF << 28
PSTATE_EL1H: Final = 0b0101
"""``M[3:0]`` of EL1 using SP_EL1."""
RESET_PSTATE: Final = PSTATE_DAIF | PSTATE_EL1H
"""How a vCPU starts (PSCI ``CPU_ON``, boot): EL1h, DAIF masked."""
SCR_EL3_NS: Final = 1 << 0
SCR_EL3_RW: Final = 1 << 10
HCR_EL2_RW: Final = 1 << 31
HCR_EL2_TPU: Final = 1 << 24
"""Trap cache maintenance to the Point of Unification (IC, DC CVAU) to EL2: see coherence."""
HCR_EL2_TTLB: Final = 1 << 25
"""Trap TLB maintenance to EL2: see :mod:`~vcpuhp_tcg_unicorn.coherence`."""
_SCTLR_SPAN: Final = 1 << 23
_SCTLR_UCT: Final = 1 << 15
_SCTLR_M: Final = 1 << 0
NEVER: Final = 0xFFFF_FFFF_FFFF_FFFF
"""``until`` address of ``emu_start``: never reached (not 4-byte aligned)."""

#: ``(op0, op1, CRn, CRm, op2)`` of registers reached through Unicorn's CP interface.
Sysreg = tuple[int, int, int, int, int]
_SCR_EL3: Final = (3, 6, 1, 1, 0)
_HCR_EL2: Final = (3, 4, 1, 1, 0)
_SPSR_EL1: Final = (3, 0, 4, 0, 0)
_SCTLR_EL1: Final = (3, 0, 1, 0, 0)
_TCR_EL1: Final = (3, 0, 2, 0, 2)
_MPIDR_EL1: Final = (3, 0, 0, 0, 5)
_ID_AA64MMFR1_EL1: Final = (3, 0, 0, 7, 1)
_DCZID_EL0: Final = (3, 3, 0, 0, 7)

#: Unicorn ``exception_index`` values the interrupt hook can see (QEMU ``EXCP_*``).
EXCP_UDEF: Final = 1
EXCP_SWI: Final = 2
EXCP_PREFETCH_ABORT: Final = 3
EXCP_DATA_ABORT: Final = 4
EXCP_BKPT: Final = 7
EXCP_HVC: Final = 11
EXCP_SMC: Final = 13
EXCEPTION_NAMES: Final = {
    EXCP_UDEF: "undefined instruction", EXCP_SWI: "svc", EXCP_PREFETCH_ABORT: "prefetch abort",
    EXCP_DATA_ABORT: "data abort", 5: "irq", 6: "fiq", EXCP_BKPT: "breakpoint",
    EXCP_HVC: "hvc", EXCP_SMC: "smc",
}

#: ``MachineConfig.cpu_model`` -> the Unicorn CPU model constant (``unicorn.arm64_const``).
CPU_MODELS: Final[dict[str, str]] = {
    "cortex-a57": "UC_CPU_ARM64_A57",
    "cortex-a72": "UC_CPU_ARM64_A72",
    "max": "UC_CPU_ARM64_MAX",
}

_serials = itertools.count(1)


class GuestExits(Protocol):
    """Where an engine sends what the guest does that Unicorn does not handle."""

    def mmio_read(self, addr: int, size: int) -> int:
        """A guest read of ``size`` bytes at guest-physical ``addr`` in an MMIO region."""

    def mmio_write(self, addr: int, size: int, value: int) -> None:
        """A guest write of ``size`` bytes at ``addr`` in an MMIO region."""

    def exception(self, intno: int) -> None:
        """Unicorn raised exception ``intno`` (``EXCP_*``); handle it or raise to stop."""

    def unmapped(self, access: int, addr: int, size: int) -> None:
        """The guest touched unbacked physical memory; ``run`` raises ``UcError`` next."""

    def sysreg_read(self, reg: Sysreg) -> int | None:
        """``MRS`` of ``reg``: its value, or ``None`` to let Unicorn (or a trap) answer."""

    def sysreg_write(self, reg: Sysreg, value: int) -> bool:
        """``MSR`` of ``reg``: ``True`` if handled (Unicorn then skips the write)."""

    def gic_read(self, reg: Sysreg) -> int:
        """``MRS`` of a GIC CPU interface register (``ICC_*``, EL1 only): its value."""

    def gic_write(self, reg: Sysreg, value: int) -> None:
        """``MSR`` of a GIC CPU interface register (``ICC_*``, EL1 only)."""


class UnboundExits:
    """The :class:`GuestExits` of a spare engine, which no vCPU owns and which never runs."""

    def _unbound(self, *_args: object) -> None:
        raise BackendError("tcg-unicorn: a spare engine ran guest code (no vCPU owns it)")

    def mmio_read(self, addr: int, size: int) -> int:
        """Never called: a spare engine does not run."""
        self._unbound(addr, size)
        return 0

    def mmio_write(self, addr: int, size: int, value: int) -> None:
        """Never called: a spare engine does not run."""
        self._unbound(addr, size, value)

    def exception(self, intno: int) -> None:
        """Never called: a spare engine does not run."""
        self._unbound(intno)

    def unmapped(self, access: int, addr: int, size: int) -> None:
        """Never called: a spare engine does not run."""
        self._unbound(access, addr, size)

    def sysreg_read(self, reg: Sysreg) -> int | None:
        """Never called: a spare engine does not run."""
        self._unbound(reg)
        return None

    def sysreg_write(self, reg: Sysreg, value: int) -> bool:
        """Never called: a spare engine does not run."""
        self._unbound(reg, value)
        return False

    def gic_read(self, reg: Sysreg) -> int:
        """Never called: a spare engine does not run."""
        self._unbound(reg)
        return 0

    def gic_write(self, reg: Sysreg, value: int) -> None:
        """Never called: a spare engine does not run."""
        self._unbound(reg, value)


@dataclass(frozen=True)
class RamMapping:
    """The guest RAM every engine maps: ``size`` bytes at ``base``, held at ``host_address``."""

    base: int
    size: int
    host_address: int


def _x_register(n: int) -> int:
    if 0 <= n <= 28:
        return int(arm64.UC_ARM64_REG_X0) + n
    if n == 29:
        return int(arm64.UC_ARM64_REG_X29)
    if n == 30:
        return int(arm64.UC_ARM64_REG_X30)
    raise ValueError(f"x{n} is not a general-purpose register (x0-x30)")


class Engine:
    """A Unicorn AArch64 engine with the machine's memory map.

    Created before its vCPU thread starts and closed after that thread was
    joined; in between only the vCPU thread touches it, except
    :meth:`request_stop`, which any thread may call while it runs.
    """

    def __init__(
        self,
        *,
        cpu_model: str,
        tb_size: int,
        ram: RamMapping,
        mmio: Sequence[tuple[int, int]],
        mpidr: int,
        exits: GuestExits,
        block_boundary_stops: bool = True,
    ) -> None:
        if cpu_model not in CPU_MODELS:
            raise BackendError(
                f"tcg-unicorn: CPU model {cpu_model!r} is not available under TCG; "
                f"valid: {', '.join(CPU_MODELS)}"
            )
        self.id = next(_serials)
        self.cpu_model = cpu_model
        self.mpidr = mpidr
        self._exits = exits
        self._hook_error: BaseException | None = None
        self.closed = False
        self.ram = ram
        try:
            self.uc: Any = unicorn.Uc(unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM,
                                      getattr(arm64, CPU_MODELS[cpu_model]))
            finalizer = getattr(self.uc, "_Uc__finalizer", None)
            if finalizer is not None:
                # The binding would uc_close() the engine at interpreter exit, possibly
                # under its running vCPU thread; the backend closes it itself (close()).
                finalizer.atexit = False
            self.uc.ctl_set_tcg_buffer_size(tb_size)
            self.uc.mem_map_ptr(ram.base, ram.size, unicorn_const.UC_PROT_ALL, ram.host_address)
            self.exact_async_stops = block_boundary_stops and enable_block_boundary_stops(self.uc)
            self.irq_line = IrqLine(self.uc)
            """The CPU's IRQ input; set by the vCPU's own thread only (see its module)."""
            for base, size in mmio:
                self.uc.mmio_map(base, size, self._mmio_read, base, self._mmio_write, base)
            self.uc.hook_add(unicorn_const.UC_HOOK_INTR, self._on_interrupt)
            self.uc.hook_add(unicorn_const.UC_HOOK_INSN, self._on_mrs, None, 1, 0,
                             arm64.UC_ARM64_INS_MRS)
            self.uc.hook_add(unicorn_const.UC_HOOK_INSN, self._on_msr, None, 1, 0,
                             arm64.UC_ARM64_INS_MSR)
            self.uc.hook_add(unicorn_const.UC_HOOK_MEM_INVALID, self._on_invalid_memory)
            self.tb_size = int(self.uc.ctl_get_tcg_buffer_size())
            self.has_pan = bool((self.uc.cpr_read(*_ID_AA64MMFR1_EL1) >> 20) & 0xF)
            self.dc_zva_bytes = 4 << (self.uc.cpr_read(*_DCZID_EL0) & 0xF)
            """The block ``DC ZVA`` zeroes (``DCZID_EL0.BS``: log2 of its size in words)."""
            # What the firmware of a machine without EL3 leaves: EL1 is AArch64 and Non-secure.
            self.uc.cpr_write(*_SCR_EL3, self.uc.cpr_read(*_SCR_EL3) | SCR_EL3_RW | SCR_EL3_NS)
            # No EL2 either, but its traps bring TLB and PoU cache maintenance to the
            # backend, which makes them reach every engine (coherence).
            self.uc.cpr_write(*_HCR_EL2, self.uc.cpr_read(*_HCR_EL2) | HCR_EL2_RW | HCR_EL2_TPU
                              | HCR_EL2_TTLB)
            self.maintenance = MaintenanceInbox()
            """TLB and code maintenance other engines (and this one) posted for the next run."""
            self._presented = {**presented_id_registers(self.sysreg), _MPIDR_EL1: mpidr}
            """Registers the MRS hook answers at EL1: the CPU as the machine presents it."""
            self.uc.reg_write(arm64.UC_ARM64_REG_PSTATE, RESET_PSTATE)
            self._reset_context = self.uc.context_save()
        except UcError as exc:
            self.close()
            raise BackendError(f"tcg-unicorn: cannot create an AArch64 engine: {exc}") from exc

    def rebind(self, *, mpidr: int, exits: GuestExits) -> None:
        """Hand a spare engine (closed by nobody, not running) to another vCPU."""
        if self.closed:
            raise BackendError(f"tcg-unicorn: engine #{self.id} is closed")
        self.mpidr = mpidr
        self._presented[_MPIDR_EL1] = mpidr
        self._exits = exits

    def forget_translations(self) -> None:
        """Drop every translated block and cached translation (``UC_CTL_TB_FLUSH``, ``_TLB_FLUSH``).

        Each engine caches the code it translated and the page tables it walked, and
        sees only its own changes to them; a spare engine must not bring back
        translations of code or tables that another CPU may have rewritten since.
        """
        self.maintenance.take()  # all of it is done here
        self.uc.ctl_flush_tb()
        self.flush_tlb()

    def flush_tlb(self) -> None:
        """Drop every cached translation of the guest's page tables (``UC_CTL_TLB_FLUSH``)."""
        self.uc.ctl(unicorn_const.UC_CTL_TLB_FLUSH, unicorn_const.UC_CTL_IO_WRITE)

    def _apply_maintenance(self) -> None:
        work = self.maintenance.take()
        if work & Maintenance.TLB:
            self.flush_tlb()
        if work & Maintenance.CODE:
            self.uc.ctl_flush_tb()

    def apply_maintenance_and_continue_at(self, pc: int) -> None:
        """From the exception hook: do this engine's pending maintenance now, then go on
        at ``pc`` in the same run (``uc_reg_write_batch``, see the module notes).

        The hook runs in Unicorn's CPU loop between blocks (no translated code on the
        stack, and the loop forgets the last block after an exception), so dropping
        every translated block here is safe.
        """
        self._apply_maintenance()
        self.uc.reg_write_batch([(arm64.UC_ARM64_REG_PC, pc)])

    # -- hooks (run on the vCPU thread, inside run()) -------------------------------------

    # Every hook catches what its handler raises, remembers the first error, stops the
    # engine and returns a well-formed value; run() raises the error afterwards. (The
    # binding does the same but returns None to C, which ctypes reports as unraisable.)

    def _fail(self, error: BaseException) -> None:
        if self._hook_error is None:
            self._hook_error = error
        self.uc.emu_stop()

    def _mmio_read(self, _uc: Any, offset: int, size: int, base: int) -> int:
        try:
            return self._exits.mmio_read(base + offset, size)
        except BaseException as exc:
            self._fail(exc)
            return 0

    def _mmio_write(self, _uc: Any, offset: int, size: int, value: int, base: int) -> None:
        try:
            self._exits.mmio_write(base + offset, size, value)
        except BaseException as exc:
            self._fail(exc)

    def _on_interrupt(self, _uc: Any, intno: int, _data: Any) -> None:
        try:
            self._exits.exception(intno)
        except BaseException as exc:
            self._fail(exc)

    def _on_mrs(self, uc: Any, reg: int, cp: Any, _data: Any) -> int:
        key = (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
        if key in ICC_SYSREGS:
            return self._on_gic_access(uc, key, reg, None)
        try:
            value = self._presented.get(key)
            if value is None:
                value = self._exits.sysreg_read(key)
            elif self.at_el0 and not (key in EL0_READABLE and self.sysreg(_SCTLR_EL1) & _SCTLR_UCT):
                return 0  # UNDEFINED or trapped at EL0: Unicorn raises it
            if value is None:
                return 0  # Unicorn's own register, or one it lacks (then it traps as UNDEFINED)
            if reg != arm64.UC_ARM64_REG_XZR:
                uc.reg_write(reg, value)
        except BaseException as exc:
            self._fail(exc)
        return 1

    def _on_msr(self, uc: Any, reg: int, cp: Any, _data: Any) -> int:
        key = (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2)
        if key in ICC_SYSREGS:
            return self._on_gic_access(uc, key, reg, int(cp.val))
        try:
            return 1 if self._exits.sysreg_write(key, int(cp.val)) else 0
        except BaseException as exc:
            self._fail(exc)
            return 0

    def _on_gic_access(self, uc: Any, key: Sysreg, reg: int, written: int | None) -> int:
        """``MRS``/``MSR`` of an ``ICC_*`` register (``written`` is ``None`` for a read).

        They are UNDEFINED at EL0 (0: Unicorn raises it). Otherwise always "handled":
        after an error the instruction is not retired and the stop lands before it runs
        again (it is the last of its block).
        """
        try:
            if self.at_el0:
                return 0
            if written is not None:
                self._exits.gic_write(key, written)
                self._retire(uc, None)
            else:
                value = self._exits.gic_read(key)
                self._retire(uc, (reg, value) if reg != arm64.UC_ARM64_REG_XZR else None)
        except BaseException as exc:
            self._fail(exc)
        return 1

    @staticmethod
    def _retire(uc: Any, result: tuple[int, int] | None) -> None:
        """Complete, from its hook, an ``MRS``/``MSR`` of a register Unicorn lacks.

        PC is on the instruction (the hook syncs it first). One ``uc_reg_write_batch``
        writes the result and PC past the instruction: Unicorn leaves the block and goes
        on at the new PC in the same run, PC exact for any later stop (module notes).
        """
        pc = int(uc.reg_read(arm64.UC_ARM64_REG_PC))
        writes = [(arm64.UC_ARM64_REG_PC, pc + 4)]
        if result is not None:
            writes.insert(0, result)
        uc.reg_write_batch(writes)

    def _on_invalid_memory(
        self, _uc: Any, access: int, addr: int, size: int, _value: int, _data: Any
    ) -> bool:
        try:
            self._exits.unmapped(access, addr, size)
        except BaseException as exc:
            self._fail(exc)
        return False

    # -- execution --------------------------------------------------------------------------

    def run(self, max_instructions: int = 0) -> None:
        """Execute from PC until stopped, ``wfi``, an error (raised), or the budget.

        ``max_instructions`` 0 runs until :meth:`request_stop` (or ``wfi``, or an
        exception hook that stops). Runs on the vCPU's own thread only. An
        exception raised by a :class:`GuestExits` handler ends the run and is
        raised here; so is Unicorn's ``UcError`` for an unbacked access.
        """
        self._hook_error = None
        self._apply_maintenance()
        self.maintenance.begin_run()
        try:
            self.uc.emu_start(self.pc, NEVER, 0, max_instructions)
        finally:
            self.maintenance.end_run()
            error, self._hook_error = self._hook_error, None
        if error is not None:
            raise error

    def snapshot(self) -> Any:
        """The CPU's registers as of now (``uc_context_save``; callable from a hook)."""
        return self.uc.context_save()

    def restore(self, snapshot: Any) -> None:
        """Put back registers saved by :meth:`snapshot` (not while running)."""
        self.uc.context_restore(snapshot)

    def request_stop(self) -> None:
        """End :meth:`run` at the next block boundary (any thread; see the module notes).

        Only exact when :attr:`exact_async_stops` is true, or from the interrupt hook.
        """
        self.uc.emu_stop()

    def stop_from_exception_hook(self) -> None:
        """End :meth:`run` after the current exception hook returns (always exact)."""
        self.uc.emu_stop()

    def reset(self, entry_point: int, args: Sequence[int]) -> None:
        """Reset the CPU state; start at ``entry_point`` at EL1h with ``args`` in x0, x1, ..."""
        if len(args) > 8:
            raise ValueError(f"{len(args)} arguments given; x0-x7 hold at most 8")
        self.uc.context_restore(self._reset_context)
        for n, value in enumerate(args):
            self.set_x(n, value)
        self.uc.reg_write(arm64.UC_ARM64_REG_PSTATE, RESET_PSTATE)
        self.uc.cpr_write(*_SPSR_EL1, 0)  # rebuilds the cached translation flags
        self.irq_line.set(False)
        self.pc = entry_point

    def close(self) -> None:
        """Free the engine (``uc_close``) now rather than at garbage collection."""
        if self.closed:
            return
        self.closed = True
        uc = getattr(self, "uc", None)
        if uc is None:
            return
        finalizer = getattr(uc, "_Uc__finalizer", None)
        if finalizer is not None:
            finalizer()  # runs uc_close once; the binding's own finalizer is then dead
        # The binding's callbacks hold the Uc object: break the cycle.
        uc._callbacks.clear()
        uc._mmio_callbacks.clear()
        self._reset_context = None

    # -- registers -------------------------------------------------------------------------

    @property
    def pc(self) -> int:
        """The program counter."""
        return int(self.uc.reg_read(arm64.UC_ARM64_REG_PC))

    @pc.setter
    def pc(self, value: int) -> None:
        self.uc.reg_write(arm64.UC_ARM64_REG_PC, value)

    @property
    def pstate(self) -> int:
        """``PSTATE`` as an SPSR value (NZCV, DAIF, M)."""
        return int(self.uc.reg_read(arm64.UC_ARM64_REG_PSTATE))

    @property
    def at_el0(self) -> bool:
        """Whether the CPU executes at EL0."""
        return not (self.pstate >> 2) & 3

    def x(self, n: int) -> int:
        """General-purpose register ``xN`` (``n`` = 31 reads the zero register)."""
        return 0 if n == 31 else int(self.uc.reg_read(_x_register(n)))

    def set_x(self, n: int, value: int) -> None:
        """Write ``xN`` (``n`` = 31, the zero register, discards)."""
        if n != 31:
            self.uc.reg_write(_x_register(n), value & 0xFFFF_FFFF_FFFF_FFFF)

    def register_by_name(self, name: str) -> int:
        """``x0``-``x30``, ``w0``-``w30`` (zero-extended), ``sp``, ``wsp``, ``xzr``, ``wzr``."""
        if name in ("xzr", "wzr"):
            return 0
        if name in ("sp", "wsp"):
            value = int(self.uc.reg_read(arm64.UC_ARM64_REG_SP))
        else:
            value = self.x(int(name[1:]))
        return value & 0xFFFF_FFFF if name[0] == "w" else value

    def sysreg(self, reg: Sysreg) -> int:
        """A system register Unicorn implements, by ``(op0, op1, CRn, CRm, op2)``."""
        return int(self.uc.cpr_read(*reg))

    def instruction_at(self, addr: int) -> int:
        """The 32-bit instruction word at guest-physical address ``addr``."""
        return int(struct.unpack("<I", bytes(self.uc.mem_read(addr, 4)))[0])

    def read_physical_u64(self, addr: int) -> int | None:
        """A u64 of guest-physical memory; ``None`` where nothing is mapped."""
        try:
            return int(struct.unpack("<Q", bytes(self.uc.mem_read(addr, 8)))[0])
        except UcError:
            return None

    @property
    def mmu_enabled(self) -> bool:
        """``SCTLR_EL1.M``: whether the EL1&0 stage-1 translation is on."""
        return bool(self.sysreg(_SCTLR_EL1) & _SCTLR_M)

    def translation_regime(self) -> Regime:
        """The registers that govern the EL1&0 translation, as of now."""
        uc = self.uc
        return Regime(
            sctlr=self.sysreg(_SCTLR_EL1), tcr=self.sysreg(_TCR_EL1),
            ttbr0=int(uc.reg_read(arm64.UC_ARM64_REG_TTBR0_EL1)),
            ttbr1=int(uc.reg_read(arm64.UC_ARM64_REG_TTBR1_EL1)),
            pan=bool(self.pstate & PSTATE_PAN),
        )

    def irq_masked(self) -> bool:
        """Whether ``PSTATE.I`` masks IRQs."""
        return bool(self.pstate & PSTATE_I)

    def take_exception(self, exception: SyncException) -> None:
        """Enter the guest's synchronous exception vector with ``exception``'s syndrome.

        ``ELR_EL1`` = the return address, ``SPSR_EL1`` = PSTATE, EL1h with DAIF
        masked, PC = ``VBAR_EL1`` + the vector for where the CPU was (Arm ARM
        ``AArch64.TakeException``).
        """
        uc = self.uc
        uc.reg_write(arm64.UC_ARM64_REG_ESR_EL1, exception.esr)
        if exception.far is not None:
            uc.reg_write(arm64.UC_ARM64_REG_FAR_EL1, exception.far)
        return_address = exception.return_address
        pstate = self.pstate
        offset = vector_base_offset(pstate) + VECTOR_SYNC
        el, on_sp_elx = (pstate >> 2) & 3, pstate & 1
        uc.reg_write(arm64.UC_ARM64_REG_ELR_EL1, return_address)
        new_pstate = (pstate & PSTATE_NZCV) | PSTATE_DAIF | PSTATE_EL1H
        if self.has_pan and (pstate & PSTATE_PAN or not self.sysreg(_SCTLR_EL1) & _SCTLR_SPAN):
            new_pstate |= PSTATE_PAN  # SCTLR_EL1.SPAN = 0: PAN is set on taking an exception
        if el == 1 and on_sp_elx:
            uc.reg_write(arm64.UC_ARM64_REG_PSTATE, new_pstate)
        else:  # SP_EL0 was live: bank it and make SP_EL1 live
            sp_el0 = uc.reg_read(arm64.UC_ARM64_REG_SP)
            sp_el1 = uc.reg_read(arm64.UC_ARM64_REG_SP_EL1)
            uc.reg_write(arm64.UC_ARM64_REG_SP_EL0, sp_el0)
            uc.reg_write(arm64.UC_ARM64_REG_PSTATE, new_pstate)
            uc.reg_write(arm64.UC_ARM64_REG_SP, sp_el1)
        uc.cpr_write(*_SPSR_EL1, pstate)  # after PSTATE: this also rebuilds the cached flags
        self.pc = int(uc.reg_read(arm64.UC_ARM64_REG_VBAR_EL1)) + offset
