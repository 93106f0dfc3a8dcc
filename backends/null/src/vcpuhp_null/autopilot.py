"""A guest that answers hotplug on its own, for interactive use of the null backend.

It watches for the GED interrupt on the boot CPU and then does what the
bundled guest does (:meth:`GuestDriver.handle_hotplug`) on a worker thread,
so ``vcpuhp run --accel null`` behaves like a machine with a cooperative OS.

Like a real guest it does nothing while the machine is paused (QMP
``stop``): interrupts raised meanwhile stay pending and are handled after
``cont``.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Final

from vcpuhp import events as ev
from vcpuhp import memmap
from vcpuhp.errors import VcpuhpError
from vcpuhp.machine import RunState, VirtMachine
from vcpuhp_null.driver import GuestDriver

_log = logging.getLogger(__name__)

#: INTIDs 1020-1023 are special (1023: spurious, nothing to acknowledge).
_FIRST_SPECIAL_INTID: Final = 1020


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
        if (event.name == ev.INTERRUPT and event.data.get("cpu_index") == 0) \
                or event.name == ev.RESUME:
            self._wakeups.put(True)

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every event emitted so far was delivered and every wake-up it
        caused was handled (for tests: after it, the guest has done what it will do)."""
        self.machine.events.flush(timeout)
        self._wakeups.join()

    def _run(self) -> None:
        while True:
            running = self._wakeups.get()
            try:
                if not running:
                    return
                self._handle_pending()
            finally:
                self._wakeups.task_done()

    def _handle_pending(self) -> None:
        try:
            while (self.machine.run_state is RunState.RUNNING
                   and self.machine.gic.irq_pending(self.driver.boot_cpu)):
                if not self._take_one():
                    break
        except VcpuhpError as exc:
            _log.warning("autopilot guest: %s", exc)
        except Exception:
            _log.exception("autopilot guest: interrupt handling failed")

    def _take_one(self) -> bool:
        """Acknowledge, handle and end one interrupt; False when there was none.

        The EOI happens even when handling raises, so the interrupt never stays
        active (an active GED interrupt would silence every later one).
        """
        intid = self.driver.take_interrupt()
        if intid >= _FIRST_SPECIAL_INTID:
            return False  # spurious: nothing was acknowledged, so nothing to end
        try:
            if intid == memmap.spi_intid(memmap.ACPI_GED_SPI):
                self.driver.handle_hotplug()
        finally:
            self.driver.end_interrupt(intid)
        return True

    def close(self) -> None:
        """Stop answering."""
        self._unsubscribe()
        self._wakeups.put(False)
        if self._thread.is_alive():
            self._thread.join(timeout=5)
