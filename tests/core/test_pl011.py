"""The PL011 both ways: output lines, input through the FIFO, the level interrupt."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from vcpuhp import VirtMachine, memmap
from vcpuhp.devices import pl011 as reg
from vcpuhp.devices.pl011 import Pl011
from vcpuhp.errors import StateError
from vcpuhp_null import GuestDriver

Booted = Callable[..., tuple[VirtMachine, GuestDriver]]
UART = memmap.UART.base


class Line:
    """Records the interrupt line's level changes."""

    def __init__(self) -> None:
        self.changes: list[bool] = []

    def __call__(self, level: bool) -> None:
        self.changes.append(level)


def make() -> tuple[Pl011, list[str], Line]:
    lines: list[str] = []
    line = Line()
    return Pl011(lines.append, line), lines, line


def test_output_is_handed_on_by_line_without_carriage_returns() -> None:
    uart, lines, _ = make()
    for byte in b"hello\r\nworld\n":
        uart.write(reg.UARTDR, 4, byte)
    assert lines == ["hello", "world"]
    assert bytes(uart.output) == b"hello\r\nworld\n"


def test_output_and_lines_are_bounded() -> None:
    uart, lines, _ = make()
    for _ in range(reg.OUTPUT_KEEP + 100):
        uart.write(reg.UARTDR, 4, ord("x"))
    assert len(uart.output) == reg.OUTPUT_KEEP
    assert uart.output_total == reg.OUTPUT_KEEP + 100
    assert lines and all(len(line) == reg.MAX_LINE for line in lines)


def test_input_goes_through_the_fifo_and_raises_the_rx_interrupt() -> None:
    uart, _, line = make()
    uart.write(reg.UARTLCR_H, 4, reg.LCR_H_FEN)
    uart.write(reg.UARTIMSC, 4, reg.INT_RX | reg.INT_RT)
    assert uart.read(reg.UARTFR, 4) & reg.UARTFR_RXFE
    assert uart.receive(b"online 4\n") == 9
    assert line.changes == [True]
    assert not uart.read(reg.UARTFR, 4) & reg.UARTFR_RXFE
    assert uart.read(reg.UARTMIS, 4) == reg.INT_RX
    got = bytes(uart.read(reg.UARTDR, 4) for _ in range(9))
    assert got == b"online 4\n"
    assert uart.read(reg.UARTFR, 4) & reg.UARTFR_RXFE
    assert line.changes == [True, False], "the line drops once the FIFO is drained"


def test_input_beyond_the_fifo_waits_and_beyond_the_queue_is_refused() -> None:
    uart, _, _ = make()
    uart.write(reg.UARTLCR_H, 4, reg.LCR_H_FEN)
    text = bytes(range(32, 32 + 40))
    assert uart.receive(text) == 40
    assert uart.read(reg.UARTFR, 4) & reg.UARTFR_RXFF, "16 bytes fill the FIFO"
    assert bytes(uart.read(reg.UARTDR, 4) for _ in range(40)) == text
    assert uart.input_pending == 0
    assert uart.receive(bytes(reg.INPUT_QUEUE_LIMIT + 10)) == reg.INPUT_QUEUE_LIMIT


def test_without_fifo_enable_the_fifo_is_one_byte_deep() -> None:
    uart, _, _ = make()
    uart.receive(b"ab")
    assert uart.read(reg.UARTFR, 4) & reg.UARTFR_RXFF
    assert uart.read(reg.UARTDR, 4) == ord("a")
    assert uart.read(reg.UARTDR, 4) == ord("b")


def test_transmit_raises_tx_until_cleared() -> None:
    uart, _, line = make()
    uart.write(reg.UARTIMSC, 4, reg.INT_TX)
    uart.write(reg.UARTDR, 4, ord("a"))
    assert uart.read(reg.UARTRIS, 4) & reg.INT_TX and line.changes == [True]
    uart.write(reg.UARTICR, 4, reg.INT_TX)
    assert not uart.read(reg.UARTRIS, 4) & reg.INT_TX and line.changes == [True, False]


def test_the_machine_routes_console_input_to_the_uart_spi(booted: Booted) -> None:
    machine, driver = booted("cpus=1,maxcpus=2")
    spi = machine.gic.spis[memmap.UART_SPI]
    driver.write(UART + reg.UARTIMSC, 4, reg.INT_RX)
    assert machine.console_input("x") == 1
    assert spi.pending
    assert driver.read(UART + reg.UARTDR, 4) == ord("x")
    assert not spi.pending, "a level interrupt: low again once the FIFO is empty"


def test_console_input_after_shutdown_is_refused(booted: Booted) -> None:
    machine, _ = booted("cpus=1,maxcpus=2")
    machine.shutdown()
    with pytest.raises(StateError, match="cannot type at the console: machine is shutdown"):
        machine.console_input("x")
