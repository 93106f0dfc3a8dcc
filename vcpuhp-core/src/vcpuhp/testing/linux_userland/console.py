"""The host side of the test userland: read what it prints, type its commands.

:class:`UserlandConsole` takes the guest's console lines (:meth:`~UserlandConsole.feed`;
:meth:`~UserlandConsole.attach` feeds it a machine's ``CONSOLE`` events, the
PL011's lines) and keeps, in arrival order, every masks line, command result
and kernel-log report the userland printed; its waits block until a wanted
line has arrived, and raise :class:`TimeoutError` naming what did arrive, or
:class:`GuestDied` as soon as the kernel panicked or the machine stopped.
Everything the console printed is kept too, and written to ``log``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TextIO

from vcpuhp import events as ev
from vcpuhp.masks import CpuMasks
from vcpuhp.testing.linux_userland import protocol
from vcpuhp.testing.linux_userland.protocol import CommandResult

if TYPE_CHECKING:
    from vcpuhp.machine import VirtMachine

KERNEL_PANIC: Final = "Kernel panic - not syncing"
_FATAL_EVENTS: Final = (ev.GUEST_PANICKED, ev.SHUTDOWN, ev.RESET)


class GuestDied(RuntimeError):
    """The guest can no longer answer: its kernel panicked, or the machine stopped or reset."""


def parse_masks(line: str) -> CpuMasks | None:
    """The masks on a ``possible … online …`` line, or ``None``."""
    if not line.startswith("possible "):
        return None
    try:
        masks = CpuMasks.parse(line)
    except ValueError:
        return None
    return masks if masks.possible else None


class UserlandConsole:
    """What the userland said, and its commands; see :mod:`.protocol`.

    :param send: types text at the guest's console, returning how many bytes
        it took (:meth:`VirtMachine.console_input`); ``None`` for a console
        that is only read.
    """

    def __init__(self, send: Callable[[str], int] | None = None,
                 log: TextIO | None = None) -> None:
        self.lines: list[str] = []
        """Every console line, kernel and userland."""
        self.masks: list[CpuMasks] = []
        """Every masks line, oldest first."""
        self.results: list[CommandResult] = []
        self.klog: list[str] = []
        """The kernel log lines the userland reported after boot (without the prefix)."""
        self.ready = False
        self.klog_complete = False
        self.powering_off = False
        self.died: str | None = None
        """Why the guest can no longer answer, once it cannot."""
        self._send = send
        self._log = log
        self._cond = threading.Condition()
        self._command_lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None

    @classmethod
    def attach(cls, machine: VirtMachine, log: TextIO | None = None) -> UserlandConsole:
        """A console fed by ``machine``'s console lines, typing through its UART."""
        console = cls(machine.console_input, log)
        console._unsubscribe = machine.events.subscribe(console._on_event)
        return console

    def close(self) -> None:
        """Stop listening to the machine (what was read stays)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_event(self, event: ev.MachineEvent) -> None:
        if event.name == ev.CONSOLE:
            self.feed(str(event.data["line"]))
        elif event.name in _FATAL_EVENTS:
            self.stopped(f"the machine emitted {event.name} {dict(event.data)}")

    def stopped(self, why: str) -> None:
        """The guest stopped (every wait ends with :class:`GuestDied`)."""
        with self._cond:
            if self.died is None:
                self.died = why
            self._cond.notify_all()

    def feed(self, line: str) -> None:
        """One line the guest's console printed."""
        if self._log is not None:
            self._log.write(line + "\n")
            self._log.flush()
        with self._cond:
            self.lines.append(line)
            if line.startswith(protocol.KLOG_PREFIX):
                self.klog.append(line[len(protocol.KLOG_PREFIX):])
            elif line == protocol.KLOG_END:
                self.klog_complete = True
            elif line == protocol.READY:
                self.ready = True
            elif line == protocol.POWER_BUTTON:
                self.powering_off = True
            elif (masks := parse_masks(line)) is not None:
                self.masks.append(masks)
            elif (result := protocol.parse_result(line)) is not None:
                self.results.append(result)
            elif KERNEL_PANIC in line and self.died is None:
                self.died = f"the kernel panicked: {line.strip()}"
            self._cond.notify_all()

    def _wait(self, what: str, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done():
                remaining = deadline - time.monotonic()
                tail = "\n  ".join(self.lines[-15:])
                if self.died is not None:
                    raise GuestDied(f"waiting for {what}: {self.died}; the console's last "
                                    f"lines:\n  {tail}")
                if remaining <= 0:
                    raise TimeoutError(f"the Linux userland did not print {what} within "
                                       f"{timeout:g}s; its console's last lines:\n  {tail}")
                self._cond.wait(remaining)

    @property
    def current(self) -> CpuMasks | None:
        """The masks the userland printed last."""
        with self._cond:
            return self.masks[-1] if self.masks else None

    def wait_ready(self, timeout: float) -> CpuMasks:
        """Wait for ``userland ready``; the masks at that point."""
        self._wait(f"'{protocol.READY}'", lambda: self.ready and bool(self.masks), timeout)
        current = self.current
        assert current is not None
        return current

    def wait_masks(self, expected: CpuMasks | Callable[[CpuMasks], bool],
                   timeout: float) -> CpuMasks:
        """Wait until the latest masks line equals (or satisfies) ``expected``."""
        def matches() -> bool:
            if not self.masks:
                return False
            latest = self.masks[-1]
            return expected(latest) if callable(expected) else latest == expected
        self._wait(f"masks {expected}" if isinstance(expected, CpuMasks) else "the masks wanted",
                   matches, timeout)
        current = self.current
        assert current is not None
        return current

    def command(self, command: str, cpu: int, timeout: float) -> CommandResult:
        """Type ``command cpu`` and wait for its result line."""
        line = protocol.command_line(command, cpu)
        if self._send is None:
            raise RuntimeError("this console is only read: it was made without 'send'")
        with self._command_lock:
            with self._cond:
                seen = len(self.results)
            taken = self._send(line)
            if taken != len(line):
                raise RuntimeError(f"the console took {taken} of {len(line)} bytes of {line!r}")

            def answered() -> bool:
                return any(r.command == command and r.cpu == cpu for r in self.results[seen:])
            self._wait(f"the result of '{line.strip()}'", answered, timeout)
            with self._cond:
                return next(r for r in self.results[seen:]
                            if r.command == command and r.cpu == cpu)

    def online(self, cpu: int, timeout: float) -> CommandResult:
        """``echo 1 > /sys/devices/system/cpu/cpuN/online`` in the guest."""
        return self.command("online", cpu, timeout)

    def offline(self, cpu: int, timeout: float) -> CommandResult:
        """``echo 0 > /sys/devices/system/cpu/cpuN/online`` in the guest."""
        return self.command("offline", cpu, timeout)

    def wait_klog(self, timeout: float) -> list[str]:
        """Wait for the kernel-log report to end; its lines."""
        self._wait(f"'{protocol.KLOG_END}'", lambda: self.klog_complete, timeout)
        with self._cond:
            return list(self.klog)

    def firmware_complaints(self) -> list[str]:
        """The reported kernel log lines that name an ACPI or firmware problem."""
        with self._cond:
            return [line for line in self.klog
                    if any(pattern in line for pattern in protocol.KLOG_PATTERNS)]


__all__ = ["KERNEL_PANIC", "GuestDied", "UserlandConsole", "parse_masks"]
