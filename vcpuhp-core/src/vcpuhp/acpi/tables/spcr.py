"""The Serial Port Console Redirection table, revision 2.

Microsoft's SPCR specification; it names the PL011 at ``0x09000000`` on
SPI 1 (GSIV 33) as the console.
"""

from __future__ import annotations

import struct
from typing import Final

from vcpuhp import memmap
from vcpuhp.acpi.tables.gas import AccessSize, gas
from vcpuhp.acpi.tables.sdt import sdt

SPCR_REVISION: Final = 2
INTERFACE_ARM_PL011: Final = 3
INTERRUPT_TYPE_ARM_GIC: Final = 1 << 3
BAUD_9600: Final = 3


def build_spcr() -> bytes:
    """The SPCR describing the ``virt`` machine's PL011."""
    body = struct.pack(
        "<B3s12sBBIBBBBBBHHBBBIBI",
        INTERFACE_ARM_PL011, b"\0\0\0",
        gas(memmap.UART.base, bit_width=32, access=AccessSize.DWORD),
        INTERRUPT_TYPE_ARM_GIC,
        0,                                   # 8259 IRQ: none
        memmap.spi_intid(memmap.UART_SPI),   # global system interrupt
        BAUD_9600,
        0,                                   # parity: none
        1,                                   # stop bits: 1
        0,                                   # flow control: none
        0,                                   # terminal type: VT100
        0,                                   # language
        0xFFFF, 0xFFFF,                      # PCI device / vendor id: not PCI
        0, 0, 0,                             # PCI bus / device / function
        0,                                   # PCI flags
        0,                                   # PCI segment
        0,                                   # reserved
    )
    return sdt(b"SPCR", SPCR_REVISION, body)
