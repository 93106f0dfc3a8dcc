"""An Arm PL011 UART (PrimeCell r1p5): the guest's console, both directions.

Register map and interrupt bits are the PL011 TRM's (ARM DDI 0183); the
behaviour follows QEMU's ``hw/char/pl011.c`` where the TRM leaves room, so
Linux's ``amba-pl011`` / ``sbsa-uart`` drivers and the bundled guest see
what they see on QEMU's ``virt``:

* transmit is instant: ``UARTFR.TXFE`` is always set and every write to
  ``UARTDR`` raises the transmit interrupt (cleared through ``UARTICR``);
* receive has a 16-byte FIFO (1 byte with ``UARTLCR_H.FEN`` clear); each
  received byte raises the receive interrupt, which clears when the FIFO
  drains. Input the FIFO cannot take waits in a bounded host-side queue
  (a serial line with flow control), so a script can type whole commands;
* the interrupt line is ``UARTRIS & UARTIMSC != 0``, a level, driven
  through ``raise_line`` on every change.

Output is kept bounded: the last :data:`OUTPUT_KEEP` bytes, and lines longer
than :data:`MAX_LINE` are handed on in pieces.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Final

UARTDR: Final = 0x000
UARTRSR: Final = 0x004
UARTFR: Final = 0x018
UARTILPR: Final = 0x020
UARTIBRD: Final = 0x024
UARTFBRD: Final = 0x028
UARTLCR_H: Final = 0x02C
UARTCR: Final = 0x030
UARTIFLS: Final = 0x034
UARTIMSC: Final = 0x038
UARTRIS: Final = 0x03C
UARTMIS: Final = 0x040
UARTICR: Final = 0x044
UARTDMACR: Final = 0x048

UARTFR_TXFE: Final = 1 << 7
UARTFR_RXFF: Final = 1 << 6
UARTFR_TXFF: Final = 1 << 5
UARTFR_RXFE: Final = 1 << 4
LCR_H_FEN: Final = 1 << 4

INT_OE: Final = 1 << 10
INT_RT: Final = 1 << 6
INT_TX: Final = 1 << 5
INT_RX: Final = 1 << 4
INT_ALL: Final = 0x7FF

FIFO_DEPTH: Final = 16
INPUT_QUEUE_LIMIT: Final = 64 * 1024
"""Bytes of host input waiting for FIFO room; more is refused (``receive`` says how much)."""
OUTPUT_KEEP: Final = 64 * 1024
"""Bytes of guest output :attr:`Pl011.output` keeps (the most recent)."""
MAX_LINE: Final = 4096
"""A line longer than this is handed on in pieces of this size."""

_ID_REGISTERS: Final = {
    0xFE0: 0x11, 0xFE4: 0x10, 0xFE8: 0x14, 0xFEC: 0x00,
    0xFF0: 0x0D, 0xFF4: 0xF0, 0xFF8: 0x05, 0xFFC: 0xB1,
}
_RESET_IFLS: Final = 0x12
_RESET_CR: Final = 0x300
_PLAIN_REGISTERS: Final = (UARTILPR, UARTIBRD, UARTFBRD, UARTLCR_H, UARTCR, UARTIFLS, UARTDMACR)


class Pl011:
    """The UART's registers over a console sink (lines out) and an input queue (bytes in)."""

    def __init__(
        self,
        on_line: Callable[[str], None],
        raise_line: Callable[[bool], None] | None = None,
    ) -> None:
        self._on_line = on_line
        self._raise_line = raise_line or (lambda _level: None)
        self._partial = bytearray()
        self.output = bytearray()
        """The most recent guest output (at most :data:`OUTPUT_KEEP` bytes)."""
        self.output_total = 0
        """Bytes the guest has written in all."""
        self._fifo: deque[int] = deque()
        self._input: deque[int] = deque()
        self._registers = self._reset_registers()
        self._int_level = 0
        self._int_mask = 0
        self._rsr = 0
        self._line = False

    @staticmethod
    def _reset_registers() -> dict[int, int]:
        registers = dict.fromkeys(_PLAIN_REGISTERS, 0)
        registers[UARTIFLS], registers[UARTCR] = _RESET_IFLS, _RESET_CR
        return registers

    def state(self) -> dict[str, Any]:
        """Registers, FIFO and output, for comparisons."""
        return {
            "output": bytes(self.output).hex(),
            "registers": dict(self._registers),
            "ris": self._int_level,
            "imsc": self._int_mask,
            "rx_fifo": bytes(self._fifo).hex(),
            "input": len(self._input),
        }

    # -- host side ---------------------------------------------------------------

    def receive(self, data: bytes) -> int:
        """Bytes typed at the console; returns how many were taken (the rest did not fit)."""
        room = INPUT_QUEUE_LIMIT - len(self._input)
        taken = data[: max(room, 0)]
        self._input.extend(taken)
        self._refill()
        return len(taken)

    @property
    def input_pending(self) -> int:
        """Bytes received from the host that the guest has not read yet."""
        return len(self._input) + len(self._fifo)

    def _fifo_depth(self) -> int:
        return FIFO_DEPTH if self._registers[UARTLCR_H] & LCR_H_FEN else 1

    def _refill(self) -> None:
        while self._input and len(self._fifo) < self._fifo_depth():
            self._fifo.append(self._input.popleft())
            self._int_level |= INT_RX
        self._update()

    def _update(self) -> None:
        level = bool(self._int_level & self._int_mask)
        if level != self._line:
            self._line = level
            self._raise_line(level)

    # -- guest side ----------------------------------------------------------------

    def _flags(self) -> int:
        flags = UARTFR_TXFE
        if not self._fifo:
            flags |= UARTFR_RXFE
        if len(self._fifo) >= self._fifo_depth():
            flags |= UARTFR_RXFF
        return flags

    def read(self, offset: int, size: int) -> int:
        """Register read (``UARTDR`` pops the receive FIFO)."""
        if offset == UARTDR:
            value = self._fifo.popleft() if self._fifo else 0
            if not self._fifo:
                self._int_level &= ~(INT_RX | INT_RT)
            self._refill()
            return value
        if offset == UARTRSR:
            return self._rsr
        if offset == UARTFR:
            return self._flags()
        if offset == UARTIMSC:
            return self._int_mask
        if offset == UARTRIS:
            return self._int_level
        if offset == UARTMIS:
            return self._int_level & self._int_mask
        if offset in self._registers:
            return self._registers[offset]
        return _ID_REGISTERS.get(offset, 0)

    def write(self, offset: int, size: int, value: int) -> None:
        """Register write: ``UARTDR`` transmits; interrupt mask and clear; the rest is kept."""
        if offset == UARTDR:
            self._transmit(value & 0xFF)
            self._int_level |= INT_TX
        elif offset == UARTRSR:
            self._rsr = 0
        elif offset == UARTIMSC:
            self._int_mask = value & INT_ALL
        elif offset == UARTICR:
            self._int_level &= ~value
        elif offset in self._registers:
            self._registers[offset] = value & 0xFFFF
            if offset == UARTLCR_H:
                self._refill()
        self._update()

    def _transmit(self, byte: int) -> None:
        self.output.append(byte)
        self.output_total += 1
        if len(self.output) > OUTPUT_KEEP:
            del self.output[: len(self.output) - OUTPUT_KEEP]
        if byte == 0x0A:
            self._emit_line()
        elif byte != 0x0D:
            self._partial.append(byte)
            if len(self._partial) >= MAX_LINE:
                self._emit_line()

    def _emit_line(self) -> None:
        line = self._partial.decode("utf-8", "replace")
        self._partial.clear()
        self._on_line(line)


__all__ = ["FIFO_DEPTH", "MAX_LINE", "OUTPUT_KEEP", "Pl011"]
