"""What the test userland prints on the console and what it obeys: the lines both sides share.

Guest -> host, one line each, never interleaved with each other (each is one
``write`` to the tty):

* ``klog: <N>[time] text``: after boot, every kernel log line of level
  warning or worse, and every line at any level that names a firmware or ACPI
  problem (:data:`KLOG_PATTERNS`); then ``klog end``.
* ``possible A present B enabled C online D``: the four masks of
  ``/sys/devices/system/cpu``, once at start and again whenever one changes
  (:class:`~vcpuhp.masks.CpuMasks` parses it).
* ``userland ready``: commands are read from now on.
* ``online N ok`` / ``online N failed: <reason>`` (and ``offline``): the
  result of a command.
* ``power button: powering off``: the ACPI power button was pressed
  (``system_powerdown``); Linux powers off next.

Host -> guest: ``online N`` / ``offline N`` (writes 1 / 0 to
``/sys/devices/system/cpu/cpuN/online``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

READY: Final = "userland ready"
KLOG_PREFIX: Final = "klog: "
KLOG_END: Final = "klog end"
POWER_BUTTON: Final = "power button: powering off"
COMMANDS: Final = ("online", "offline")
KLOG_PATTERNS: Final = ("ACPI Error", "ACPI BIOS Error", "ACPI Warning", "ACPI BIOS Warning",
                        "Firmware Bug", "Firmware Warn", "FW BUG")
"""Kernel log text that means the machine's firmware (ACPI tables, EFI) is wrong."""
_RESULT_RE: Final = re.compile(r"^(online|offline) (\d+) (ok|failed: (.*))$")


@dataclass(frozen=True)
class CommandResult:
    """The guest's answer to ``online N`` / ``offline N``."""

    command: str
    cpu: int
    ok: bool
    reason: str = ""
    """Why it failed: the shell's message (``write error: Invalid argument``)."""

    def __str__(self) -> str:
        return f"{self.command} {self.cpu} {'ok' if self.ok else 'failed: ' + self.reason}"


def parse_result(line: str) -> CommandResult | None:
    """The command result on ``line``, or ``None`` if it is not one."""
    match = _RESULT_RE.match(line)
    if match is None:
        return None
    command, cpu, status, reason = match.groups()
    return CommandResult(command, int(cpu), status == "ok", reason or "")


def command_line(command: str, cpu: int) -> str:
    """The console line asking for ``command`` on ``cpu``."""
    if command not in COMMANDS:
        raise ValueError(f"unknown userland command {command!r}; valid: {', '.join(COMMANDS)}")
    if cpu < 0:
        raise ValueError(f"CPU number {cpu} is negative")
    return f"{command} {cpu}\n"


__all__ = ["COMMANDS", "KLOG_END", "KLOG_PATTERNS", "KLOG_PREFIX", "POWER_BUTTON", "READY",
           "CommandResult", "command_line", "parse_result"]
