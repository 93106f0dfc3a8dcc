"""The ACPI CPU hotplug register block (QEMU ``docs/specs/acpi_cpu_hotplug.rst``).

Twelve little-endian bytes:

======  ===========================================  ==========================================
offset  read                                         write
======  ===========================================  ==========================================
0x0     command data 2 (arch id bits 63:32 after 3)  CPU selector
0x4     flags: 0 enabled, 1 insert, 2 remove,        flags: 1 clears insert, 2 clears remove,
        4 eject requested to firmware                3 ejects, 4 hands eject to firmware
0x5     --                                           command: 0 next CPU with event, 1 OST
                                                     event, 2 OST status, 3 get arch id
0x8     command data (next selector / arch id low)   command data (OST event / status)
======  ===========================================  ==========================================

As the spec says, the selector stores any value, but while it does not name
a possible CPU every other register reads 0 and ignores writes (the spec's
own enumeration loop relies on this). Writes the guest has no business making
(an unknown command, reserved flag bits, a bad access size) change nothing and
are reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol

from vcpuhp.vcpu import Vcpu

REGISTER_BLOCK_SIZE: Final = 12
OFF_SELECTOR: Final = 0x0
OFF_FLAGS: Final = 0x4
OFF_COMMAND: Final = 0x5
OFF_DATA: Final = 0x8

FLAG_ENABLED: Final = 1 << 0
FLAG_INSERT: Final = 1 << 1
FLAG_REMOVE: Final = 1 << 2
FLAG_EJECT: Final = 1 << 3
FLAG_FW_REMOVE: Final = 1 << 4

CMD_GET_NEXT_CPU_WITH_EVENT: Final = 0
CMD_OST_EVENT: Final = 1
CMD_OST_STATUS: Final = 2
CMD_GET_ARCH_ID: Final = 3
COMMANDS: Final = {
    CMD_GET_NEXT_CPU_WITH_EVENT: "get next CPU with event",
    CMD_OST_EVENT: "OST event",
    CMD_OST_STATUS: "OST status",
    CMD_GET_ARCH_ID: "get arch id",
}


class HotplugController(Protocol):
    """What the register block asks of the machine."""

    def eject(self, index: int) -> None:
        """The guest ejected CPU ``index`` (``_EJ0``); refuse by raising."""

    def ost(self, index: int, event: int, status: int) -> None:
        """The guest reported ``_OST(event, status)`` for CPU ``index``."""

    def guest_error(self, message: str) -> None:
        """The guest wrote something invalid; nothing was changed."""


class CpuHotplugRegisters:
    """The register block over the machine's CPU records."""

    def __init__(self, vcpus: Sequence[Vcpu], controller: HotplugController) -> None:
        self._vcpus = vcpus
        self._controller = controller
        self.selector = 0
        self.command = CMD_GET_NEXT_CPU_WITH_EVENT
        self.ost_event = 0

    def state(self) -> dict[str, Any]:
        """The block's own registers, for comparisons."""
        return {"selector": self.selector, "command": self.command, "ost_event": self.ost_event}

    @property
    def selected(self) -> Vcpu:
        """The CPU the selector points at (check :attr:`selects_a_cpu` first)."""
        return self._vcpus[self.selector]

    @property
    def selects_a_cpu(self) -> bool:
        """Whether the selector names a possible CPU."""
        return self.selector < len(self._vcpus)

    def read(self, offset: int, size: int) -> int:
        """A guest read; unmapped bytes read as zero."""
        if not self.selects_a_cpu and size in (1, 4) and offset in (0x0, 0x4, 0x8):
            return 0
        if offset == OFF_SELECTOR and size == 4:
            if self.command == CMD_GET_ARCH_ID:
                return (self.selected.slot.arch_id >> 32) & 0xFFFF_FFFF
            return 0
        if offset == OFF_FLAGS and size == 1:
            vcpu = self.selected
            return (
                (FLAG_ENABLED if vcpu.enabled else 0)
                | (FLAG_INSERT if vcpu.insert_pending else 0)
                | (FLAG_REMOVE if vcpu.remove_pending else 0)
                | (FLAG_FW_REMOVE if vcpu.fw_remove else 0)
            )
        if offset == OFF_DATA and size == 4:
            if self.command == CMD_GET_NEXT_CPU_WITH_EVENT:
                return self.selector
            if self.command == CMD_GET_ARCH_ID:
                return self.selected.slot.arch_id & 0xFFFF_FFFF
            return 0
        self._controller.guest_error(
            f"CPU hotplug block: {size}-byte read at offset {offset:#x} is not a register "
            "(0x0 dword, 0x4 byte, 0x8 dword)"
        )
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        """A guest write; an invalid one is reported and changes nothing."""
        if offset == OFF_SELECTOR and size == 4:
            self.selector = value
        elif not self.selects_a_cpu and (offset, size) in ((0x4, 1), (0x5, 1), (0x8, 4)):
            return
        elif offset == OFF_FLAGS and size == 1:
            self._write_flags(value)
        elif offset == OFF_COMMAND and size == 1:
            self._write_command(value)
        elif offset == OFF_DATA and size == 4:
            self._write_data(value)
        else:
            self._controller.guest_error(
                f"CPU hotplug block: {size}-byte write of {value:#x} at offset {offset:#x} "
                "is not a register (0x0 dword, 0x4 byte, 0x5 byte, 0x8 dword)"
            )

    def _write_flags(self, value: int) -> None:
        known = FLAG_INSERT | FLAG_REMOVE | FLAG_EJECT | FLAG_FW_REMOVE
        if value & ~known:
            self._controller.guest_error(
                f"CPU hotplug block: flags write {value:#x} sets reserved bits "
                "(valid: 0x2 clear insert, 0x4 clear remove, 0x8 eject, 0x10 firmware eject)"
            )
            return
        vcpu = self.selected
        # One action per write, in QEMU's order of precedence.
        if value & FLAG_INSERT:
            vcpu.insert_pending = False
        elif value & FLAG_REMOVE:
            vcpu.remove_pending = False
        elif value & FLAG_EJECT:
            try:
                self._controller.eject(vcpu.slot.index)
            except Exception as exc:
                self._controller.guest_error(f"CPU hotplug block: eject refused: {exc}")
        elif value & FLAG_FW_REMOVE:
            vcpu.fw_remove = True

    def _write_command(self, value: int) -> None:
        if value not in COMMANDS:
            valid = ", ".join(f"{k} ({v})" for k, v in COMMANDS.items())
            self._controller.guest_error(
                f"CPU hotplug block: unknown command {value}; valid: {valid}"
            )
            return
        self.command = value
        if value == CMD_GET_NEXT_CPU_WITH_EVENT:
            count = len(self._vcpus)
            for step in range(count):
                index = (self.selector + step) % count
                vcpu = self._vcpus[index]
                if vcpu.insert_pending or vcpu.remove_pending or vcpu.fw_remove:
                    self.selector = index
                    break

    def _write_data(self, value: int) -> None:
        if self.command == CMD_OST_EVENT:
            self.ost_event = value
        elif self.command == CMD_OST_STATUS:
            vcpu = self.selected
            vcpu.ost_event, vcpu.ost_status = self.ost_event, value
            self._controller.ost(vcpu.slot.index, self.ost_event, value)
        else:
            self._controller.guest_error(
                f"CPU hotplug block: command data write with command {self.command} "
                f"({COMMANDS[self.command]}) has no effect; select OST event (1) or status (2)"
            )
