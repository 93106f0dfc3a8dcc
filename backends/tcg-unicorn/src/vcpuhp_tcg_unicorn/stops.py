"""Exact asynchronous stops: ``uc_emu_stop`` that takes effect only between blocks.

Why this exists (measured on Unicorn 2.1.4, source read at the v2.1.4 tag):

* ``uc_emu_stop`` sets ``uc->stop_request`` and makes the CPU's exit flag
  negative. Translated code tests that flag at the start of every
  translation block (``gen_tb_start``) and, in Unicorn only, after every
  guest load and store (``check_exit_request`` in ``tcg/tcg-op.c``). The
  check after a memory access leaves through ``cpu_loop_exit_restore``,
  which puts PC back on the accessing instruction although the access has
  happened: on resume it runs again (an MMIO write twice; ``ldr x0, [x0]``
  with a clobbered base). A stop seen at a block start is exact: PC is the
  block's first instruction and nothing of it ran.
* ``check_exit_request`` emits nothing while ``uc->no_exit_request`` is true
  (a flag Unicorn uses for Thumb IT blocks; nothing on AArch64 resets it).
  With it set before anything is translated, every stop lands on a block
  boundary, so a stop from another thread is exact -- and ``emu_start`` can
  run without an instruction count, whose per-instruction hook costs about
  5x in speed.
* No public control sets that flag, so :func:`enable_block_boundary_stops`
  finds it in ``struct uc_struct`` by the values of the fields around it
  (``target_page_size``, ``target_page_align``, the host page sizes,
  ``qemu_icache_linesize``, ``context_content``; then ``next_pc`` and four
  bools: ``hook_insert``, ``first_tb``, ``no_exit_request``, ``init_done``)
  and then *proves* the effect on a scratch engine: an MMIO write whose
  callback calls ``uc_emu_stop`` must leave PC past the write, not on it.
  If either step fails (another Unicorn build), the backend falls back to
  instruction-count slices, which are exact but slow, and says so.
* ``uc_emu_start`` clears a stop requested just before it enters translated
  code (``stop_request`` and the CPU's exit request are reset on entry), so
  a stop can be lost when it races with the start of a run. A
  :class:`StopRetrier` repeats the stop until the run it was meant for has
  ended; it sleeps without a timeout while no stop is outstanding.
"""

from __future__ import annotations

import ctypes
import functools
import heapq
import logging
import os
import struct
import time
from collections.abc import Callable
from typing import Any, Final

from vcpuhp.deadline_thread import DeadlineThread, Work
from vcpuhp_tcg_unicorn.binding import UcError, arm64, unicorn
from vcpuhp_tcg_unicorn.internals import close_scratch, handle_address

_log = logging.getLogger(__name__)

_SCAN_BYTES: Final = 16384
"""How much of ``struct uc_struct`` is searched (the fields sit about 2 KiB in)."""
_NO_EXIT_REQUEST_FROM_PAGE_SIZE: Final = 50
"""Offset of ``no_exit_request`` from ``target_page_size`` (see the module notes)."""
_INIT_DONE_FROM_PAGE_SIZE: Final = 51
RETRY_SECONDS: Final = 0.0005
"""How long a stop may stay unanswered before it is requested again."""


_known_offsets: list[int] = []
"""Offset of ``target_page_size`` in ``struct uc_struct`` found by the first search (the
same for every engine of this Unicorn build)."""


def _looks_right(blob: bytes, offset: int, page_size: int, host_page: int) -> bool:
    size, align = struct.unpack_from("<II", blob, offset)
    if size != page_size or align != page_size - 1:
        return False
    host, real_host = struct.unpack_from("<QQ", blob, offset + 8)
    _icache, content, _context = struct.unpack_from("<iii", blob, offset + 24)
    flags = blob[offset + 48:offset + 52]
    return (host, real_host, content) == (host_page, host_page, 1) and flags[2:4] == b"\x00\x01"


def find_no_exit_request(uc: Any) -> int | None:
    """The address of ``uc->no_exit_request`` in engine ``uc``, or ``None`` if not found.

    ``uc`` must be initialised (it has mapped memory). The first engine is searched;
    later ones are only checked at the offset found then.
    """
    base = handle_address(uc)
    blob = ctypes.string_at(base, _SCAN_BYTES)
    page_size = int(uc.ctl_get_page_size())
    host_page = os.sysconf("SC_PAGESIZE")
    for known in _known_offsets:
        if _looks_right(blob, known, page_size, host_page):
            return base + known + _NO_EXIT_REQUEST_FROM_PAGE_SIZE
    found = [offset for offset in range(0, _SCAN_BYTES - 56, 8)
             if _looks_right(blob, offset, page_size, host_page)]
    if len(found) != 1:
        return None
    _known_offsets[:] = found
    return base + found[0] + _NO_EXIT_REQUEST_FROM_PAGE_SIZE


def _set_flag(uc: Any) -> bool:
    address = find_no_exit_request(uc)
    if address is None:
        return False
    ctypes.c_bool.from_address(address).value = True
    return True


def _probe() -> bool:
    """Whether setting the flag makes a stop from an MMIO callback land past the access."""
    ram, mmio = 0x4000_0000, 0x0900_0000
    uc = unicorn.Uc(unicorn.UC_ARCH_ARM64, unicorn.UC_MODE_ARM, arm64.UC_CPU_ARM64_MAX)
    try:
        uc.mem_map(ram, 0x1000)
        uc.mmio_map(mmio, 0x1000, lambda *_: 0, None,
                    lambda engine, *_: engine.emu_stop(), None)
        if not _set_flag(uc):
            return False
        # movz x1, #0x900, lsl #16; str w2, [x1]; add x3, x3, #1; wfi
        code = struct.pack("<4I", 0xD2A12001, 0xB9000022, 0x91000463, 0xD503207F)
        uc.mem_write(ram, code)
        uc.emu_start(ram, ram + len(code) + 4, 0, 0)
        pc = int(uc.reg_read(arm64.UC_ARM64_REG_PC))
        return pc == ram + len(code) and int(uc.reg_read(arm64.UC_ARM64_REG_X3)) == 1
    except (UcError, OSError, ValueError):
        return False
    finally:
        close_scratch(uc)


@functools.lru_cache(maxsize=1)
def block_boundary_stops_available() -> bool:
    """Whether this Unicorn build passes the probe (checked once per process)."""
    verdict = _probe()
    if not verdict:
        _log.warning("tcg-unicorn: this Unicorn build does not allow exact "
                     "asynchronous stops; running instruction-count slices (slow)")
    return verdict


def enable_block_boundary_stops(uc: Any) -> bool:
    """Make stops of ``uc`` land only at block boundaries; ``False`` if not possible.

    Call before the engine translates anything (right after its first mapping).
    """
    if not block_boundary_stops_available():
        return False
    return _set_flag(uc)


class StopRetrier(DeadlineThread):
    """Repeats stop requests until the run they target has ended.

    ``watch(retry)`` after a stop request: :data:`RETRY_SECONDS` later the
    thread calls ``retry()``, which re-issues the stop if the run is still
    going and says whether to keep watching. The thread waits without a
    timeout while nothing is watched.
    """

    def __init__(self) -> None:
        super().__init__("vcpuhp-stop-retry")
        self._due: list[tuple[float, int, Callable[[], bool]]] = []
        self._serial = 0
        self.retries = 0

    def watch(self, retry: Callable[[], bool]) -> None:
        """Call ``retry`` in :data:`RETRY_SECONDS`; again each time it returns ``True``."""
        with self._cond:
            if self._closed:
                return
            self._push(retry)
            self._cond.notify()

    def _push(self, retry: Callable[[], bool]) -> None:
        self._serial += 1
        heapq.heappush(self._due, (time.monotonic() + RETRY_SECONDS, self._serial, retry))

    def _forget(self) -> None:
        self._due.clear()

    def _next(self) -> tuple[Work | None, float | None]:
        if not self._due:
            return None, None
        delay = self._due[0][0] - time.monotonic()
        if delay > 0:
            return None, delay
        _, _, retry = heapq.heappop(self._due)
        return lambda: self._retry(retry), None

    def _retry(self, retry: Callable[[], bool]) -> None:
        if retry():
            with self._cond:
                self.retries += 1
                if not self._closed:
                    self._push(retry)


__all__ = [
    "RETRY_SECONDS",
    "StopRetrier",
    "block_boundary_stops_available",
    "enable_block_boundary_stops",
    "find_no_exit_request",
]
