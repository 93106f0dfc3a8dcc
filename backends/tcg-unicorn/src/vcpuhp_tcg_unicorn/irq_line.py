"""The vCPU's IRQ input, driven as QEMU's GIC drives it: ``CPU_INTERRUPT_HARD``.

Why this exists (Unicorn 2.1.4, source read at the v2.1.4 tag):

* Unicorn keeps QEMU's interrupt path: at every return to the CPU loop
  (``cpu_handle_interrupt``) an ``interrupt_request`` with
  ``CPU_INTERRUPT_HARD`` set makes ``arm_cpu_exec_interrupt`` take an IRQ
  when ``PSTATE.I`` allows it, through QEMU's own
  ``arm_cpu_do_interrupt_aarch64`` (ELR, SPSR, PSTATE, SP banking, PAN,
  the vector). Unicorn's interrupt hook only sees *synchronous* exceptions.
* ``msr daifclr`` and ``eret`` end their translation block and return to
  that loop, so an interrupt that became pending while masked is taken on
  the very next instruction after the guest unmasks -- nothing to poll.
* ``wfi`` completes at once while the bit is set (``cpu_has_work``), as the
  architecture says for a pending interrupt, masked or not; without it the
  run ends with PC after the ``wfi``.
* No public control sets the bit. :func:`find_interrupt_request` finds the
  CPU's ``CPUState`` through a pointer in ``struct uc_struct``: a block
  that starts with ``nr_cores`` = ``nr_threads`` = 1 and holds the engine's
  own handle (``CPUState.uc``) 32-34 KiB in, past the TB jump cache.
  ``interrupt_request`` is the ``uint32_t`` at offset 28 (two ints, a
  pointer, seven bools, ``cflags_next_tb``). The probe then proves it on a
  scratch engine: with the bit set, a ``wfi`` with IRQs masked falls
  through and the IRQ vector is entered right after ``msr daifclr``, with
  ``ELR_EL1`` on the next instruction; with it clear, ``wfi`` ends the run.

The running CPU loop rewrites ``interrupt_request`` itself (without
atomics), so only the vCPU's own thread writes the bit (:meth:`IrqLine.set`):
between runs, or from one of its hooks. A bit raised in a hook is seen when
the CPU next returns to its loop -- at once after an ``ICC_*`` access, which
the engine retires with a return to the loop; otherwise the run is ended.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import struct
from dataclasses import dataclass
from typing import Any, Final

from vcpuhp.errors import BackendError
from vcpuhp_tcg_unicorn.binding import UcError, arm64, unicorn
from vcpuhp_tcg_unicorn.internals import ReadableMemory, close_scratch, handle_address

_log = logging.getLogger(__name__)

CPU_INTERRUPT_HARD: Final = 0x0002
"""QEMU's ``CPU_INTERRUPT_HARD``: the IRQ input."""
_INTERRUPT_REQUEST: Final = 28
"""Offset of ``interrupt_request`` in ``CPUState``."""
_UC_SCAN_BYTES: Final = 16384
"""How much of ``struct uc_struct`` is searched for the ``cpu`` pointer."""
_BACK_POINTER_RANGE: Final = (0x8000, 0x8800)
"""Where ``CPUState.uc`` may sit (after a 32 KiB ``tb_jmp_cache`` and a host-sized
``sigjmp_buf``)."""
_UNKNOWN_MARK: Final = 0xDEAD
_BRK_0: Final = 0xD4200000
_NEVER: Final = 0xFFFF_FFFF_FFFF_FFFF
_SCR_EL3: Final = (3, 6, 1, 1, 0)
_SCR_EL3_RW: Final = 1 << 10


@dataclass(frozen=True)
class _Layout:
    """Where the fields sit: the same for every engine of this Unicorn build."""

    cpu_pointer: int
    """Offset of ``uc->cpu`` in ``struct uc_struct``."""
    back_pointer: int
    """Offset of ``CPUState.uc``."""


_known_layouts: list[_Layout] = []
"""The layout found by the first search (at most one entry)."""


def _fingerprint(base: int, layout: _Layout, readable: ReadableMemory | None) -> int | None:
    """``uc->cpu`` of the engine at ``base`` if the fields there look as ``layout`` says."""
    (pointer,) = struct.unpack_from("<Q", ctypes.string_at(base + layout.cpu_pointer, 8))
    if pointer % 8 or (readable is not None
                       and not readable.contains(pointer, layout.back_pointer + 8)):
        return None
    if struct.unpack_from("<ii", ctypes.string_at(pointer, 8)) != (1, 1):
        return None
    (back,) = struct.unpack_from("<Q", ctypes.string_at(pointer + layout.back_pointer, 8))
    return pointer if back == base else None


def _search(base: int) -> _Layout | None:
    readable = ReadableMemory()
    if not readable.contains(base, _UC_SCAN_BYTES):
        return None
    blob = ctypes.string_at(base, _UC_SCAN_BYTES)
    low, high = _BACK_POINTER_RANGE
    found: list[_Layout] = []
    for offset in range(0, _UC_SCAN_BYTES, 8):
        (pointer,) = struct.unpack_from("<Q", blob, offset)
        if pointer % 8 or not readable.contains(pointer, high):
            continue
        cpu = ctypes.string_at(pointer, high)
        if struct.unpack_from("<ii", cpu, 0) != (1, 1):
            continue
        found += [_Layout(offset, at) for at in range(low, high, 8)
                  if struct.unpack_from("<Q", cpu, at)[0] == base]
    return found[0] if len(found) == 1 else None


def find_interrupt_request(uc: Any) -> int | None:
    """The address of the CPU's ``interrupt_request`` in engine ``uc``; ``None`` if not found.

    ``uc`` must be initialised (it has mapped memory). The first engine is searched
    (checking every pointer against the readable mappings); later ones are only
    checked at the offsets found then.
    """
    base = handle_address(uc)
    for known in _known_layouts:
        cpu = _fingerprint(base, known, None)
        if cpu is not None:
            return cpu + _INTERRUPT_REQUEST
    layout = _search(base)
    if layout is None:
        return None
    cpu = _fingerprint(base, layout, ReadableMemory())
    if cpu is None:
        return None
    _known_layouts[:] = [layout]
    return cpu + _INTERRUPT_REQUEST


def _probe() -> bool:
    """Whether setting the bit makes QEMU take the IRQ exactly as the module notes say."""
    ram = 0x4000_0000
    vectors = ram + 0x800
    uc = unicorn.Uc(unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM, arm64.UC_CPU_ARM64_MAX)
    try:
        uc.mem_map(ram, 0x2000)
        address = find_interrupt_request(uc)
        if address is None:
            return False
        line = ctypes.c_uint32.from_address(address)
        scr = uc.cpr_read(*_SCR_EL3)
        uc.cpr_write(*_SCR_EL3, scr | _SCR_EL3_RW)  # EL1 is AArch64 (as the engine sets it)
        # movz x1, #0x800; movk x1, #0x4000, lsl #16; msr vbar_el1, x1; isb;
        # wfi; movz x3, #1; msr daifclr, #2; movz x4, #1; wfi; brk #0
        code = struct.pack("<10I", 0xD2810001, 0xF2A80001, 0xD518C001, 0xD5033FDF,
                           0xD503207F, 0xD2800023, 0xD50342FF, 0xD2800024, 0xD503207F,
                           _BRK_0)
        uc.mem_write(ram, code)
        # the IRQ vector (current EL, SP_ELx): movz x5, #1; brk #0
        uc.mem_write(vectors + 0x280, struct.pack("<2I", 0xD2800025, _BRK_0))
        uc.hook_add(unicorn.UC_HOOK_INTR, lambda engine, *_: engine.emu_stop())
        uc.reg_write(arm64.UC_ARM64_REG_PSTATE, 0x3C5)
        line.value |= CPU_INTERRUPT_HARD
        uc.emu_start(ram, _NEVER, 0, 0)  # ends on the vector's brk
        taken = (int(uc.reg_read(arm64.UC_ARM64_REG_PC)) == vectors + 0x284
                 and int(uc.reg_read(arm64.UC_ARM64_REG_ELR_EL1)) == ram + 28
                 and int(uc.reg_read(arm64.UC_ARM64_REG_X3)) == 1
                 and int(uc.reg_read(arm64.UC_ARM64_REG_X4)) == 0
                 and int(uc.reg_read(arm64.UC_ARM64_REG_X5)) == 1)
        line.value &= ~CPU_INTERRUPT_HARD
        uc.reg_write(arm64.UC_ARM64_REG_X3, _UNKNOWN_MARK)
        uc.reg_write(arm64.UC_ARM64_REG_PSTATE, 0x3C5)
        uc.emu_start(ram + 16, _NEVER, 0, 0)  # the wfi now ends the run
        halted = (int(uc.reg_read(arm64.UC_ARM64_REG_PC)) == ram + 20
                  and int(uc.reg_read(arm64.UC_ARM64_REG_X3)) == _UNKNOWN_MARK)
        return taken and halted
    except (UcError, OSError, ValueError):
        return False
    finally:
        close_scratch(uc)


@functools.lru_cache(maxsize=1)
def irq_line_available() -> bool:
    """Whether this Unicorn build passes the probe (checked once per process)."""
    verdict = _probe()
    if not verdict:
        _log.warning("tcg-unicorn: the CPU's interrupt_request was not found or did not "
                     "behave as in Unicorn 2.1.4; interrupts cannot be delivered")
    return verdict


class IrqLine:
    """One engine's IRQ input (``CPU_INTERRUPT_HARD``); set only by the vCPU's own thread
    while the engine is not running."""

    def __init__(self, uc: Any) -> None:
        address = find_interrupt_request(uc) if irq_line_available() else None
        if address is None:
            raise BackendError(
                "tcg-unicorn: cannot drive the CPU's IRQ input in this Unicorn build "
                f"(unicorn {unicorn.__version__}); pip install unicorn==2.1.4"
            )
        self._request = ctypes.c_uint32.from_address(address)

    @property
    def level(self) -> bool:
        """Whether the IRQ input is asserted."""
        return bool(self._request.value & CPU_INTERRUPT_HARD)

    def set(self, level: bool) -> None:
        """Assert or de-assert the IRQ input (QEMU takes it when ``PSTATE.I`` allows)."""
        if level:
            self._request.value |= CPU_INTERRUPT_HARD
        else:
            self._request.value &= ~CPU_INTERRUPT_HARD


__all__ = ["CPU_INTERRUPT_HARD", "IrqLine", "find_interrupt_request", "irq_line_available"]
