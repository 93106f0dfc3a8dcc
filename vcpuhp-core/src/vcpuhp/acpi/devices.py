r"""AML for the ``virt`` machine's fixed devices: the console, the GED, the power button.

* ``\_SB.COM0``: the PL011 (``ARMH0011``) at ``0x09000000``, SPI 1 (GSIV 33).
* ``\_SB.GED``: the Generic Event Device (``ACPI0013``), SPI 9 (GSIV 41),
  edge-triggered and active-high. ``_EVT`` reads (and so clears) the event
  selector once; bit ``0x8`` runs the CPU hotplug scan, bit ``0x2`` notifies
  the power button.
* ``\_SB.PWRB``: the power button (``PNP0C0C``) the GED notifies.
"""

from __future__ import annotations

from typing import Final

from vcpuhp import memmap
from vcpuhp.acpi.aml import (
    And,
    Call,
    Device,
    Field,
    FieldAccess,
    FieldUnit,
    FieldUpdate,
    If,
    Interrupt,
    LEqual,
    Local,
    Memory32Fixed,
    Method,
    Name,
    Notify,
    OperationRegion,
    Path,
    RegionSpace,
    ResourceTemplate,
    Store,
)
from vcpuhp.acpi.cpu_hotplug import SCAN_METHOD
from vcpuhp.devices.ged import GED_EVENT_CPU_HOTPLUG, GED_EVENT_POWER_DOWN, OFF_EVENT_SELECTOR

POWER_BUTTON: Final = r"\_SB.PWRB"
NOTIFY_POWER_BUTTON: Final = 0x80
GED_SELECTOR_SIZE: Final = 4


def uart_device() -> Device:
    r"""``\_SB.COM0``: the PL011 console."""
    return Device(
        "COM0",
        Name("_HID", "ARMH0011"),
        Name("_UID", 0),
        Name(
            "_CRS",
            ResourceTemplate(
                Memory32Fixed(memmap.UART.base, memmap.UART.size),
                Interrupt(memmap.spi_intid(memmap.UART_SPI)),
            ),
        ),
    )


def ged_device() -> Device:
    r"""``\_SB.GED``: the Generic Event Device and its ``_EVT`` dispatcher."""
    events = Local(0)

    def on_event(bit: int, *terms: Call | Notify) -> If:
        return If(LEqual(And(events, bit), bit), *terms)

    return Device(
        "GED",
        Name("_HID", "ACPI0013"),
        Name("_UID", "GED"),
        Name(
            "_CRS",
            ResourceTemplate(Interrupt(memmap.spi_intid(memmap.ACPI_GED_SPI), edge=True)),
        ),
        OperationRegion(
            "EREG", RegionSpace.SYSTEM_MEMORY,
            memmap.ACPI_GED.base + OFF_EVENT_SELECTOR, GED_SELECTOR_SIZE,
        ),
        Field(
            "EREG", FieldUnit("ESEL", 8 * GED_SELECTOR_SIZE),
            access=FieldAccess.DWORD, update=FieldUpdate.WRITE_AS_ZEROS,
        ),
        Method(
            "_EVT", 1,
            Store(Path("ESEL"), events),
            on_event(GED_EVENT_CPU_HOTPLUG, Call(SCAN_METHOD)),
            on_event(GED_EVENT_POWER_DOWN, Notify(Path(POWER_BUTTON), NOTIFY_POWER_BUTTON)),
            serialized=True,
        ),
    )


def power_button_device() -> Device:
    r"""``\_SB.PWRB``: the power button the GED's power-down event notifies."""
    return Device("PWRB", Name("_HID", "PNP0C0C"), Name("_UID", 0))

