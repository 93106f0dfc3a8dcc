"""Reading Unicorn's private structures safely: the engine handle, readable memory, scratch engines.

Two fields the backend needs have no public control in Unicorn 2.1.4
(``uc->no_exit_request``, :mod:`~vcpuhp_tcg_unicorn.stops`; the CPU's
``interrupt_request``, :mod:`~vcpuhp_tcg_unicorn.irq_line`). Both are found
by the values of the fields around them and then *proven* by a probe on a
scratch engine before the backend relies on them. Reading a stray pointer
would crash the interpreter, so every candidate pointer is checked against
the process's readable mappings (``/proc/self/maps``) first.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any, Final

_MAPS: Final = Path("/proc/self/maps")


def handle_address(uc: Any) -> int:
    """The address of ``struct uc_struct`` behind a binding ``Uc`` object."""
    handle = uc._uch
    value = getattr(handle, "value", handle)
    return int(value)


class ReadableMemory:
    """The process's readable address ranges, as of construction."""

    def __init__(self) -> None:
        ranges: list[tuple[int, int]] = []
        try:
            text = _MAPS.read_text()
        except OSError:
            text = ""
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 2 or not fields[1].startswith("r"):
                continue
            start, _, end = fields[0].partition("-")
            ranges.append((int(start, 16), int(end, 16)))
        merged: list[tuple[int, int]] = []
        for low, high in sorted(ranges):
            if merged and low <= merged[-1][1]:  # adjacent mappings (a grown heap)
                merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
            else:
                merged.append((low, high))
        self._starts = [low for low, _ in merged]
        self._ranges = merged

    def contains(self, address: int, size: int) -> bool:
        """Whether ``size`` bytes at ``address`` are readable (one or adjacent mappings)."""
        position = bisect.bisect_right(self._starts, address) - 1
        if position < 0:
            return False
        low, high = self._ranges[position]
        return low <= address and address + size <= high


def close_scratch(uc: Any) -> None:
    """``uc_close`` a probe's engine now, on this thread (not whenever the collector runs)."""
    finalizer = getattr(uc, "_Uc__finalizer", None)
    if finalizer is not None:
        finalizer()
    uc._callbacks.clear()
    uc._mmio_callbacks.clear()


__all__ = ["ReadableMemory", "close_scratch", "handle_address"]
