"""The guest's console output is bounded however much it writes (issue 8, item 7)."""

from __future__ import annotations

from collections.abc import Callable

from vcpuhp import VirtMachine, memmap
from vcpuhp.devices.pl011 import MAX_LINE, OUTPUT_KEEP, UARTDR, Pl011
from vcpuhp.machine import CONSOLE_LINES


def _write(machine: VirtMachine, text: bytes) -> None:
    for byte in text:
        machine.mmio_write(memmap.UART.base + UARTDR, 1, byte)


def test_machine_console_keeps_the_last_lines_only(
    null_machine: Callable[..., VirtMachine],
) -> None:
    machine = null_machine("cpus=1,maxcpus=2")
    for n in range(CONSOLE_LINES + 50):
        _write(machine, f"{n}\n".encode())
    assert len(machine.console) == CONSOLE_LINES
    assert machine.console[0] == "50"
    assert machine.console[-1] == str(CONSOLE_LINES + 49)


def test_a_line_without_end_is_handed_on_in_pieces() -> None:
    lines: list[str] = []
    uart = Pl011(lines.append)
    for _ in range(3 * MAX_LINE + 5):
        uart.write(UARTDR, 1, ord("x"))
    assert lines == ["x" * MAX_LINE] * 3
    uart.write(UARTDR, 1, 0x0A)
    assert lines[-1] == "xxxxx"


def test_uart_output_keeps_the_most_recent_bytes() -> None:
    uart = Pl011(lambda _line: None)
    data = bytes(range(256)) * (OUTPUT_KEEP // 256 + 3)
    for byte in data:
        uart.write(UARTDR, 1, byte)
    assert bytes(uart.output) == data[-OUTPUT_KEEP:]
