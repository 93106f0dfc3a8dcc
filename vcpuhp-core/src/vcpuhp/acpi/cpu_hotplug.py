r"""The CPU hotplug AML: ``\_SB.PRES`` (the register block) and ``\_SB.CPUS``.

It is laid out the way QEMU's ``hw/acpi/cpu.c`` builds it, over the register
block of :mod:`vcpuhp.devices.cpu_hotplug`, with the arm64 ``_STA`` semantics
Linux >= 6.11 expects: every possible CPU is always *present*, and only the
*enabled* bit follows plug and unplug.

``\_SB.PRES`` declares the 12-byte register block and its fields:

====== =========================================================================
CSEL   dword at 0x0: CPU selector (write)
CPEN   bit 0 of the byte at 0x4: selected CPU is enabled (read)
CINS   bit 1: insert event (read); write 1 to clear
CRMV   bit 2: remove event (read); write 1 to clear
CEJ0   bit 3: write 1 to eject the selected CPU
CEJF   bit 4: eject requested to firmware
CCMD   byte at 0x5: command (write)
CDAT   dword at 0x8: command data (read and write)
====== =========================================================================

``\_SB.CPUS`` (``ACPI0010``) holds the methods ``CTFY``, ``CSTA``, ``CEJ0``,
``CSCN`` and ``COST`` and one ``Cxxx`` processor device per possible CPU.
Every register access happens with the ``CPLK`` mutex held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from vcpuhp import memmap
from vcpuhp.acpi.aml import (
    ONE,
    ZERO,
    Acquire,
    Aml,
    Arg,
    Buffer,
    Call,
    Decrement,
    Device,
    EisaId,
    Field,
    FieldAccess,
    FieldUnit,
    FieldUpdate,
    If,
    LAnd,
    LEqual,
    Local,
    Memory32Fixed,
    Method,
    Mutex,
    Name,
    Notify,
    Offset,
    OperationRegion,
    Path,
    RegionSpace,
    Release,
    Reserved,
    ResourceTemplate,
    Return,
    Store,
    While,
)
from vcpuhp.devices.cpu_hotplug import (
    CMD_GET_NEXT_CPU_WITH_EVENT,
    CMD_OST_EVENT,
    CMD_OST_STATUS,
    OFF_DATA,
    OFF_FLAGS,
)

RESOURCES: Final = r"\_SB.PRES"
CPUS: Final = r"\_SB.CPUS"
SCAN_METHOD: Final = r"\_SB.CPUS.CSCN"
LOCK: Final = rf"{RESOURCES}.CPLK"

STA_PRESENT: Final = 1 << 0
STA_ENABLED: Final = 1 << 1
STA_SHOW_IN_UI: Final = 1 << 2
STA_FUNCTIONING: Final = 1 << 3
STA_DISABLED: Final = STA_PRESENT | STA_SHOW_IN_UI | STA_FUNCTIONING
"""``0xD``: present but not enabled (a possible CPU that is not plugged)."""
STA_PLUGGED: Final = STA_DISABLED | STA_ENABLED
"""``0xF``: present and enabled."""

NOTIFY_DEVICE_CHECK: Final = 1
NOTIFY_EJECT_REQUEST: Final = 3


@dataclass(frozen=True)
class CpuDeviceInfo:
    """What the ``Cxxx`` device of one possible CPU needs."""

    index: int
    mat: bytes
    """The ``_MAT`` buffer: this CPU's MADT GICC entry with Enabled set."""
    ejectable: bool
    """Whether the device gets ``_EJ0`` (the policy allows unplugging it)."""


def cpu_device_name(index: int) -> str:
    """``C000`` ... ``C1FF``: the device name of CPU ``index`` (three hex digits)."""
    return f"C{index:03X}"


def _field(name: str) -> Path:
    return Path(f"{RESOURCES}.{name}")


def _locked(*terms: Aml) -> list[Aml]:
    return [Acquire(Path(LOCK), 0xFFFF), *terms, Release(Path(LOCK))]


def resources_device() -> Device:
    r"""``\_SB.PRES``: the register block, its fields and the ``CPLK`` mutex."""
    block = memmap.CPU_HOTPLUG
    return Device(
        "PRES",
        Name("_HID", EisaId("PNP0A06")),
        Name("_UID", "CPU Hotplug resources"),
        Mutex("CPLK", 0),
        Name("_CRS", ResourceTemplate(Memory32Fixed(block.base, block.size))),
        OperationRegion("PRST", RegionSpace.SYSTEM_MEMORY, block.base, block.size),
        Field(
            "PRST",
            Offset(OFF_FLAGS),
            FieldUnit("CPEN", 1),
            FieldUnit("CINS", 1),
            FieldUnit("CRMV", 1),
            FieldUnit("CEJ0", 1),
            FieldUnit("CEJF", 1),
            Reserved(3),
            FieldUnit("CCMD", 8),
            access=FieldAccess.BYTE,
            update=FieldUpdate.WRITE_AS_ZEROS,
        ),
        Field(
            "PRST",
            FieldUnit("CSEL", 32),
            Offset(OFF_DATA),
            FieldUnit("CDAT", 32),
            access=FieldAccess.DWORD,
            update=FieldUpdate.PRESERVE,
        ),
    )


def _notify_method(count: int) -> Method:
    """``CTFY (index, event)``: Notify the ``Cxxx`` device of CPU ``index``."""
    return Method(
        "CTFY", 2,
        *(If(LEqual(Arg(0), index), Notify(Path(cpu_device_name(index)), Arg(1)))
          for index in range(count)),
    )


def _status_method() -> Method:
    """``CSTA (index)``: 0xF when the CPU is enabled, else 0xD (always present)."""
    status = Local(0)
    return Method(
        "CSTA", 1,
        *_locked(
            Store(Arg(0), _field("CSEL")),
            Store(STA_DISABLED, status),
            If(LEqual(_field("CPEN"), ONE), Store(STA_PLUGGED, status)),
        ),
        Return(status),
        serialized=True,
    )


def _eject_method() -> Method:
    """``CEJ0 (index)``: eject CPU ``index``."""
    return Method(
        "CEJ0", 1,
        *_locked(Store(Arg(0), _field("CSEL")), Store(ONE, _field("CEJ0"))),
        serialized=True,
    )


def _scan_method(count: int) -> Method:
    """``CSCN``: notify every CPU with a pending insert or remove event, clearing it.

    Each pass asks the block for the next CPU with an event (command 0),
    selects it and handles one event. The loop ends after a pass without an
    event, and after at most two passes per possible CPU (an insert and a
    remove event each), so a misbehaving block cannot hang the OS.
    """
    has_event, budget, index = Local(0), Local(1), Local(2)
    return Method(
        "CSCN", 0,
        *_locked(
            Store(ONE, has_event),
            Store(2 * count, budget),
            While(
                LAnd(has_event, budget),
                Store(ZERO, has_event),
                Decrement(budget),
                Store(CMD_GET_NEXT_CPU_WITH_EVENT, _field("CCMD")),
                Store(_field("CDAT"), index),
                Store(index, _field("CSEL")),
                If(
                    LEqual(_field("CINS"), ONE),
                    Call("CTFY", index, NOTIFY_DEVICE_CHECK),
                    Store(ONE, _field("CINS")),
                    Store(ONE, has_event),
                    orelse=[
                        If(
                            LEqual(_field("CRMV"), ONE),
                            Call("CTFY", index, NOTIFY_EJECT_REQUEST),
                            Store(ONE, _field("CRMV")),
                            Store(ONE, has_event),
                        )
                    ],
                ),
            ),
        ),
        serialized=True,
    )


def _ost_method() -> Method:
    """``COST (index, event, status)``: report ``_OST`` through the OST commands."""
    return Method(
        "COST", 3,
        *_locked(
            Store(Arg(0), _field("CSEL")),
            Store(CMD_OST_EVENT, _field("CCMD")),
            Store(Arg(1), _field("CDAT")),
            Store(CMD_OST_STATUS, _field("CCMD")),
            Store(Arg(2), _field("CDAT")),
        ),
        serialized=True,
    )


def cpu_device(cpu: CpuDeviceInfo) -> Device:
    """The ``Cxxx`` processor device (``ACPI0007``) of one possible CPU."""
    device = Device(
        cpu_device_name(cpu.index),
        Name("_HID", "ACPI0007"),
        Name("_UID", cpu.index),
        Method("_STA", 0, Return(Call("CSTA", cpu.index)), serialized=True),
        Name("_MAT", Buffer(cpu.mat)),
    )
    if cpu.ejectable:
        device.append(Method("_EJ0", 1, Call("CEJ0", cpu.index)))
    device.append(
        Method("_OST", 3, Call("COST", cpu.index, Arg(0), Arg(1)), serialized=True)
    )
    return device


def cpus_device(cpus: Sequence[CpuDeviceInfo]) -> Device:
    r"""``\_SB.CPUS``: the processor container, its methods and the ``Cxxx`` devices."""
    return Device(
        "CPUS",
        Name("_HID", "ACPI0010"),
        Name("_CID", EisaId("PNP0A05")),
        _notify_method(len(cpus)),
        _status_method(),
        _eject_method(),
        _scan_method(len(cpus)),
        _ost_method(),
        *(cpu_device(cpu) for cpu in cpus),
    )


def cpu_hotplug_aml(cpus: Sequence[CpuDeviceInfo]) -> list[Aml]:
    r"""The terms to put in ``\_SB``: ``PRES`` then ``CPUS``."""
    return [resources_device(), cpus_device(cpus)]
