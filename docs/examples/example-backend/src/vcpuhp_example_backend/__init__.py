"""``example``: a vcpuhp backend small enough to read in one sitting, that passes the suite.

It executes no guest code (``executes_guest_code=False``: a program outside
the machine plays the guest, such as :class:`vcpuhp.testing.guest.ScriptedGuest`),
but it has the shape of a real accelerator, KVM's: every possible vCPU is
created at realize and *parked* when not plugged (``parks_vcpus=True``), and
each realized vCPU has a host thread that "runs" it between ``power_on`` and
``power_off``. Running here means: report :meth:`VirtMachine.vcpu_started`
and wait.

The two things every threaded backend must get right are marked below:

* the machine calls :meth:`power_on`, :meth:`power_off` and :meth:`kick`
  with its lock held, so they only change fields under the vCPU's own
  condition and return (*non-blocking*);
* the vCPU thread calls into the machine (``vcpu_started``), which takes the
  machine lock; while it waits for that lock it keeps checking whether its
  vCPU was powered off meanwhile, and gives the call up if so. That is what
  lets :meth:`unrealize_vcpu` -- called on eject with the machine lock held --
  join the thread without deadlock (*lock rules*).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

from vcpuhp.backend import AcceleratorBackend, BackendCapabilities, BackendVcpu
from vcpuhp.errors import BackendError, ConfigError
from vcpuhp.topology import CpuSlot

LOCK_POLL: Final = 0.01
"""Seconds between looks at "was I powered off?" while waiting for the machine lock."""


class ExampleVcpu(BackendVcpu):
    """One slot's vCPU: a host thread while realized, and its run state."""

    def __init__(self, slot: CpuSlot) -> None:
        super().__init__(slot)
        self.cond = threading.Condition()
        # Guarded by cond:
        self.thread: threading.Thread | None = None
        self.start_pending = False
        self.exit = False
        self.epoch = 0
        """Bumped by every power_on, power_off and unrealize: a thread that sees it
        change while it waited knows its vCPU was stopped meanwhile."""


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
        self.total_threads_started = 0

    # -- create and realize ---------------------------------------------------------------

    def create_vcpu(self, slot: CpuSlot) -> ExampleVcpu:
        """Every possible slot at realize (we park): just the object, no thread yet."""
        if slot.index in self.vcpus:
            raise BackendError(f"example: CPU {slot.index} already has a vCPU")
        vcpu = self.vcpus[slot.index] = ExampleVcpu(slot)
        return vcpu

    def _own(self, vcpu: BackendVcpu) -> ExampleVcpu:
        if not isinstance(vcpu, ExampleVcpu) or self.vcpus.get(vcpu.slot.index) is not vcpu:
            raise BackendError(f"example: {vcpu!r} is not a vCPU of this backend")
        return vcpu

    def realize_vcpu(self, vcpu: BackendVcpu) -> None:
        """Start the vCPU's thread, powered off (it waits for power_on)."""
        own = self._own(vcpu)
        with own.cond:
            if own.thread is not None:
                raise BackendError(f"example: CPU {own.slot.index} is already realized")
            own.exit = own.start_pending = False
            own.epoch += 1
            own.thread = threading.Thread(target=self._run, args=(own,), daemon=True,
                                          name=f"example-cpu{own.slot.index}")
        own.thread.start()
        self.total_threads_started += 1

    def unrealize_vcpu(self, vcpu: BackendVcpu) -> None:
        """Tell the thread to exit and join it: when this returns, the thread has ended."""
        own = self._own(vcpu)
        with own.cond:
            thread, own.thread = own.thread, None
            own.exit, own.start_pending = True, False
            own.epoch += 1
            own.cond.notify_all()
        if thread is not None:
            thread.join()

    # -- power: called with the machine lock held, so they never wait ----------------------

    def power_on(self, vcpu: BackendVcpu, entry_point: int, args: Sequence[int]) -> None:
        """Ask the thread to start the vCPU; it reports vcpu_started itself."""
        own = self._own(vcpu)
        with own.cond:
            if own.thread is None:
                raise BackendError(f"example: CPU {own.slot.index} is not realized")
            own.start_pending = True
            own.epoch += 1
            own.cond.notify_all()

    def power_off(self, vcpu: BackendVcpu) -> None:
        """Stop the vCPU; the thread notices (never wait for it here)."""
        own = self._own(vcpu)
        with own.cond:
            own.start_pending = False
            own.epoch += 1
            own.cond.notify_all()

    def kick(self, vcpu: BackendVcpu) -> None:
        """Nothing to wake: this backend's vCPUs never wait for interrupts."""

    # -- the vCPU thread ---------------------------------------------------------------------

    def _run(self, vcpu: ExampleVcpu) -> None:
        while True:
            with vcpu.cond:
                while not vcpu.exit and not vcpu.start_pending:
                    vcpu.cond.wait()
                if vcpu.exit:
                    return
                vcpu.start_pending = False
                epoch = vcpu.epoch
            self._started(vcpu, epoch)

    def _started(self, vcpu: ExampleVcpu, epoch: int) -> None:
        """Report ``vcpu_started``, unless the vCPU was stopped while we waited for the lock."""
        machine = self.machine
        assert machine is not None
        while not machine.lock.acquire(timeout=LOCK_POLL):
            with vcpu.cond:
                if vcpu.epoch != epoch:
                    return  # powered off (or unrealized) meanwhile: give the call up
        try:
            with vcpu.cond:
                if vcpu.epoch != epoch:
                    return
            machine.vcpu_started(vcpu.slot.index)
        finally:
            machine.lock.release()

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
            self.unrealize_vcpu(vcpu)
        self.vcpus.clear()


__all__ = ["ExampleBackend", "ExampleVcpu"]
