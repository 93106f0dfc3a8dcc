"""The ACPI Generic Event Device (``ACPI0013``): one event selector register.

A 32-bit read at offset 0 returns the pending event bits and clears them.
Setting an event raises the GED's SPI through the interrupt controller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

GED_EVENT_CPU_HOTPLUG: Final = 0x8
"""QEMU's ``ACPI_GED_CPU_HOTPLUG_EVT``."""
GED_EVENT_POWER_DOWN: Final = 0x2
"""QEMU's ``ACPI_GED_PWR_DOWN_EVT``."""
GED_EVENTS: Final = GED_EVENT_CPU_HOTPLUG | GED_EVENT_POWER_DOWN
OFF_EVENT_SELECTOR: Final = 0x0


class AcpiGed:
    """The event selector register and the interrupt it raises."""

    def __init__(self, raise_irq: Callable[[], None], report: Callable[[str], None]) -> None:
        self._raise_irq = raise_irq
        self._report = report
        self.selector = 0

    def state(self) -> dict[str, Any]:
        """The pending event bits, for comparisons."""
        return {"selector": self.selector}

    def signal(self, event: int) -> None:
        """Latch ``event`` and raise the GED interrupt."""
        if event & ~GED_EVENTS:
            raise ValueError(f"GED event {event:#x} is not supported (valid bits: {GED_EVENTS:#x})")
        self.selector |= event
        self._raise_irq()

    def read(self, offset: int, size: int) -> int:
        """Read (and clear) the event selector."""
        if offset == OFF_EVENT_SELECTOR and size == 4:
            value, self.selector = self.selector, 0
            return value
        self._report(f"GED: {size}-byte read at offset {offset:#x}: only a dword at 0x0 exists")
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        """The selector is read-only; every write is reported and ignored."""
        self._report(f"GED: write of {value:#x} at offset {offset:#x} ignored: read-only")
