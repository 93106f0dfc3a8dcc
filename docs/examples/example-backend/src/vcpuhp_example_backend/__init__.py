"""``example``: a vcpuhp backend small enough to read in one sitting, that passes the suite.

It executes no guest code (``executes_guest_code=False``: a program outside
the machine plays the guest, such as :class:`vcpuhp.testing.guest.ScriptedGuest`),
but it has the shape of a real accelerator, KVM's: every possible vCPU is
created at realize and *parked* when not plugged (``parks_vcpus=True``), and
each realized vCPU has a host thread that "runs" it between ``power_on`` and
``power_off``. Running here means: report :meth:`VirtMachine.vcpu_started`
and wait.

The thread comes from :class:`vcpuhp.vcpu_thread.ThreadedVcpu`, which gets
right what every threaded backend must:

* the machine calls :meth:`power_on`, :meth:`power_off` and :meth:`pause`
  with its lock held, so they only record a request under the vCPU's own
  condition and return (*non-blocking*);
* the vCPU thread calls into the machine (``vcpu_started``), which takes the
  machine lock; while it waits for that lock it gives the call up as soon as
  its vCPU is powered off. That is what lets :meth:`unrealize_vcpu` -- called
  on eject with the machine lock held -- join the thread without deadlock
  (*lock rules*).

What is left to write is the accelerator's part: how a vCPU runs
(:meth:`ExampleVcpu._run_guest`) and how a running one is made to return
(:meth:`ExampleVcpu._stop_guest`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from vcpuhp.backend import AcceleratorBackend, BackendCapabilities, BackendVcpu
from vcpuhp.errors import BackendError, ConfigError
from vcpuhp.topology import CpuSlot
from vcpuhp.vcpu_thread import ThreadedVcpu, pause_vcpus, resume_vcpus

if TYPE_CHECKING:
    from vcpuhp.machine import VirtMachine

PAUSE_TIMEOUT: Final = 10.0
"""Seconds pause waits for a vCPU to stop."""


class ExampleVcpu(ThreadedVcpu):
    """One slot's vCPU: a host thread while realized. "Running" is waiting to be stopped."""

    label = "example"
    thread_name_prefix = "example-cpu"

    def __init__(self, slot: CpuSlot, machine: VirtMachine) -> None:
        super().__init__(slot, machine)
        self._stop_wanted = False  # guarded by _cond

    def _run_guest(self, epoch: int) -> None:
        """Nothing to execute: wait, like a CPU in ``wfi``, until a request needs the thread."""
        with self._cond:
            if not self._enter_guest(epoch):  # a request came first: do not run
                return
            self._stop_wanted = False
            while not self._stop_wanted:
                self._cond.wait()
            self._leave_guest(epoch)

    def _stop_guest(self) -> None:
        """Called (with the condition held) when power_off, pause or unrealize needs the thread."""
        self._stop_wanted = True


class ExampleBackend(AcceleratorBackend):
    """Parked vCPUs on host threads; no guest code runs."""

    name = "example"
    distribution = "vcpuhp-example-backend"
    capabilities = BackendCapabilities(executes_guest_code=False, parks_vcpus=True)

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        if self.options:
            raise ConfigError(f"example backend: unknown option(s) "
                              f"{', '.join(sorted(self.options))}; it takes none")
        self.vcpus: dict[int, ExampleVcpu] = {}
        self.paused = False
        self.total_threads_started = 0

    # -- create and realize ---------------------------------------------------------------

    def create_vcpu(self, slot: CpuSlot) -> ExampleVcpu:
        """Every possible slot at realize (we park): just the object, no thread yet."""
        if self.machine is None:
            raise BackendError("example: create_vcpu before attach")
        if slot.index in self.vcpus:
            raise BackendError(f"example: CPU {slot.index} already has a vCPU")
        vcpu = self.vcpus[slot.index] = ExampleVcpu(slot, self.machine)
        return vcpu

    def _own(self, vcpu: BackendVcpu) -> ExampleVcpu:
        if not isinstance(vcpu, ExampleVcpu) or self.vcpus.get(vcpu.slot.index) is not vcpu:
            raise BackendError(f"example: {vcpu!r} is not a vCPU of this backend")
        return vcpu

    def realize_vcpu(self, vcpu: BackendVcpu) -> None:
        """Start the vCPU's thread, powered off (it waits for power_on)."""
        self._own(vcpu).start_thread(paused=self.paused)
        self.total_threads_started += 1

    def unrealize_vcpu(self, vcpu: BackendVcpu) -> None:
        """Tell the thread to exit and join it: when this returns, the thread has ended."""
        self._own(vcpu).stop_thread()

    # -- requests: called with the machine lock held, so they never wait -------------------

    def power_on(self, vcpu: BackendVcpu, entry_point: int, args: Sequence[int]) -> None:
        """Ask the thread to start the vCPU; it reports vcpu_started itself."""
        self._own(vcpu).power_on(entry_point, args)

    def power_off(self, vcpu: BackendVcpu) -> None:
        """Stop the vCPU; the thread notices (never wait for it here)."""
        self._own(vcpu).power_off()

    def kick(self, vcpu: BackendVcpu) -> None:
        """Nothing to wake: this backend's vCPUs never wait for interrupts."""

    def pause(self) -> None:
        """Hold every vCPU; returns once none runs."""
        self.paused = True
        pause_vcpus(self.vcpus.values(), PAUSE_TIMEOUT)

    def resume(self) -> None:
        """Let every vCPU run again."""
        self.paused = False
        resume_vcpus(self.vcpus.values())

    # -- the rest ----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Current counts, and ``total_*`` ones that may only grow."""
        return {
            "vcpus": len(self.vcpus),
            "threads": sum(1 for v in self.vcpus.values() if v.thread is not None),
            "total_threads_started": self.total_threads_started,
        }

    def close(self) -> None:
        """End every thread and forget every vCPU, parked ones too."""
        for vcpu in list(self.vcpus.values()):
            vcpu.stop_thread()
        self.vcpus.clear()


__all__ = ["ExampleBackend", "ExampleVcpu"]
