"""A guest that answers hotplug on its own, for interactive use of the null backend.

It watches for the GED interrupt on the boot CPU and then does what the
bundled guest does (:meth:`GuestDriver.handle_hotplug`) on a worker thread,
so ``vcpuhp run --accel null`` behaves like a machine with a cooperative OS.
"""

from __future__ import annotations

import logging
import queue
import threading

from vcpuhp import events as ev
from vcpuhp import memmap
from vcpuhp.errors import VcpuhpError
from vcpuhp.machine import VirtMachine
from vcpuhp_null.driver import GuestDriver

_log = logging.getLogger(__name__)


class AutopilotGuest:
    """Handles every GED interrupt like a cooperative guest OS would."""

    def __init__(self, machine: VirtMachine, maxcpus: int | None = None) -> None:
        self.machine = machine
        self.driver = GuestDriver(machine)
        self._maxcpus = maxcpus
        self._wakeups: queue.Queue[bool] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="vcpuhp-autopilot", daemon=True)
        self._unsubscribe = machine.events.subscribe(self._on_event)

    def start(self) -> None:
        """Boot (online cold-booted CPUs) and start answering interrupts."""
        self.driver.boot(self._maxcpus)
        self._thread.start()

    def _on_event(self, event: ev.MachineEvent) -> None:
        if event.name == ev.INTERRUPT and event.data.get("cpu_index") == 0:
            self._wakeups.put(True)

    def _run(self) -> None:
        while self._wakeups.get():
            try:
                while self.machine.gic.irq_pending(self.driver.boot_cpu):
                    intid = self.driver.take_interrupt()
                    if intid == memmap.spi_intid(memmap.ACPI_GED_SPI):
                        self.driver.handle_hotplug()
                    self.driver.end_interrupt(intid)
            except VcpuhpError as exc:
                _log.warning("autopilot guest: %s", exc)

    def close(self) -> None:
        """Stop answering."""
        self._unsubscribe()
        self._wakeups.put(False)
        if self._thread.is_alive():
            self._thread.join(timeout=5)
