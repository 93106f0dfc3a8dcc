"""A transmit-only PL011 UART: enough for a guest console.

The guest writes characters to ``UARTDR``; complete lines go to the sink.
``UARTFR`` always reports an empty transmit FIFO, and the PrimeCell id
registers read as a PL011's.

Bounded whatever the guest writes: a line longer than :data:`MAX_LINE`
bytes is handed on in pieces of that size (as a terminal would wrap it),
and :attr:`Pl011.output` keeps only the last :data:`OUTPUT_BYTES` bytes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Final

UARTDR: Final = 0x000
UARTFR: Final = 0x018
UARTFR_TXFE: Final = 1 << 7
UARTFR_RXFE: Final = 1 << 4
MAX_LINE: Final = 1024
"""Longest line handed to the sink; a longer one is cut into pieces of this size."""
OUTPUT_BYTES: Final = 64 * 1024
"""How much of the guest's most recent output :attr:`Pl011.output` keeps."""
_ID_REGISTERS: Final = {
    0xFE0: 0x11, 0xFE4: 0x10, 0xFE8: 0x14, 0xFEC: 0x00,
    0xFF0: 0x0D, 0xFF4: 0xF0, 0xFF8: 0x05, 0xFFC: 0xB1,
}


class Pl011:
    """Collects guest output and hands it on line by line."""

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self._on_line = on_line
        self._partial = bytearray()
        self.output: deque[int] = deque(maxlen=OUTPUT_BYTES)
        """The last :data:`OUTPUT_BYTES` bytes the guest wrote (``bytes(output)``)."""
        self._control: dict[int, int] = {}

    def state(self) -> dict[str, Any]:
        """Output so far, for comparisons."""
        return {"output": bytes(self.output).hex(), "control": dict(self._control)}

    def read(self, offset: int, size: int) -> int:
        """Register read."""
        if offset == UARTFR:
            return UARTFR_TXFE | UARTFR_RXFE
        if offset in _ID_REGISTERS:
            return _ID_REGISTERS[offset]
        return self._control.get(offset, 0)

    def write(self, offset: int, size: int, value: int) -> None:
        """Register write: ``UARTDR`` transmits, the rest is remembered."""
        if offset != UARTDR:
            self._control[offset] = value
            return
        byte = value & 0xFF
        self.output.append(byte)
        if byte == 0x0A:
            self._end_line()
        elif byte != 0x0D:
            self._partial.append(byte)
            if len(self._partial) >= MAX_LINE:
                self._end_line()

    def _end_line(self) -> None:
        self._on_line(self._partial.decode("utf-8", "replace"))
        self._partial.clear()
