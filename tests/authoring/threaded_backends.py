"""A correct backend whose vCPUs live on host threads, and the ways threads break it.

:class:`Threaded` has the shape of tcg-unicorn and kvm (one thread per
realized vCPU, which reports ``vcpu_started`` and gives up a machine call
once its vCPU is powered off) and passes the conformance suite; each subclass
breaks one lock or thread rule. This module needs only vcpuhp-core.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from vcpuhp.backend import AcceleratorBackend, BackendCapabilities, BackendVcpu
from vcpuhp.errors import BackendError, ConfigError
from vcpuhp.topology import CpuSlot

_T = TypeVar("_T")


class ThreadedVcpu(BackendVcpu):
    """A vCPU whose "execution" is a host thread waiting for power_on."""

    def __init__(self, slot: CpuSlot) -> None:
        super().__init__(slot)
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None
        self.start_pending = False
        self.powered = False
        self.quit = False
        self.epoch = 0


class Threaded(AcceleratorBackend):
    """Correct: one thread per realized vCPU; it reports vcpu_started after power_on and
    gives up a machine call once its vCPU is powered off (so it passes the suite)."""

    name = "threaded-ok"
    distribution = "broken-backends"
    capabilities = BackendCapabilities(executes_guest_code=False, parks_vcpus=False)

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        if self.options:
            raise ConfigError(f"{self.name}: unknown option(s) {', '.join(self.options)}; "
                              "valid: none")
        self.vcpus: dict[int, ThreadedVcpu] = {}

    def create_vcpu(self, slot: CpuSlot) -> ThreadedVcpu:
        vcpu = self.vcpus[slot.index] = ThreadedVcpu(slot)
        return vcpu

    def _own(self, vcpu: BackendVcpu) -> ThreadedVcpu:
        if not isinstance(vcpu, ThreadedVcpu) or self.vcpus.get(vcpu.slot.index) is not vcpu:
            raise BackendError(f"{self.name}: {vcpu!r} is not a vCPU of this backend")
        return vcpu

    def realize_vcpu(self, vcpu: BackendVcpu) -> None:
        own = self._own(vcpu)
        own.quit = own.powered = own.start_pending = False
        own.thread = threading.Thread(target=self._main, args=(own,), daemon=True,
                                      name=f"threaded-cpu{own.slot.index}")
        own.thread.start()

    def unrealize_vcpu(self, vcpu: BackendVcpu) -> None:
        own = self._own(vcpu)
        with own.cond:
            own.quit, own.powered = True, False
            own.epoch += 1
            own.cond.notify_all()
        if own.thread is not None:
            own.thread.join()
            own.thread = None

    def destroy_vcpu(self, vcpu: BackendVcpu) -> None:
        del self.vcpus[self._own(vcpu).slot.index]

    def power_on(self, vcpu: BackendVcpu, entry_point: int, args: Sequence[int]) -> None:
        own = self._own(vcpu)
        with own.cond:
            own.powered = own.start_pending = True
            own.epoch += 1
            own.cond.notify_all()

    def power_off(self, vcpu: BackendVcpu) -> None:
        own = self._own(vcpu)
        with own.cond:
            own.powered = own.start_pending = False
            own.epoch += 1
            own.cond.notify_all()

    def close(self) -> None:
        for vcpu in list(self.vcpus.values()):
            self.unrealize_vcpu(vcpu)
        self.vcpus.clear()

    def _main(self, vcpu: ThreadedVcpu) -> None:
        while True:
            with vcpu.cond:
                while not vcpu.quit and not vcpu.start_pending:
                    vcpu.cond.wait()
                if vcpu.quit:
                    return
                vcpu.start_pending = False
                epoch = vcpu.epoch
            assert self.machine is not None
            self._call_machine(vcpu, epoch, self.machine.vcpu_started, vcpu.slot.index)

    def _call_machine(self, vcpu: ThreadedVcpu, epoch: int, fn: Callable[..., _T],
                      *args: Any) -> _T | None:
        """Call into the machine under its lock, giving up once the vCPU is powered off."""
        assert self.machine is not None
        lock = self.machine.lock
        while not lock.acquire(timeout=0.01):
            with vcpu.cond:
                if vcpu.quit or vcpu.epoch != epoch:
                    return None
        try:
            with vcpu.cond:
                if vcpu.quit or vcpu.epoch != epoch:
                    return None
            return fn(*args)
        finally:
            lock.release()


class HoldsOnToTheLock(Threaded):
    """Breaks *lock-unrealize*: the thread waits for the machine lock no matter what."""

    name = "broken-lock-unrealize"

    def _call_machine(self, vcpu: ThreadedVcpu, epoch: int, fn: Callable[..., _T],
                      *args: Any) -> _T | None:
        assert self.machine is not None
        with self.machine.lock:
            return fn(*args)


class WaitsForTheThread(Threaded):
    """Breaks *lock-power-off*: power_off waits until the vCPU thread has seen it."""

    name = "broken-lock-power-off"

    def power_off(self, vcpu: BackendVcpu) -> None:
        own = self._own(vcpu)
        seen = threading.Event()
        with own.cond:
            own.powered = own.start_pending = False
            own.epoch += 1
            own.acknowledge = seen  # type: ignore[attr-defined]
            own.cond.notify_all()
        if own.thread is not None and own.thread is not threading.current_thread():
            seen.wait(30)

    def _main(self, vcpu: ThreadedVcpu) -> None:
        while True:
            with vcpu.cond:
                seen = getattr(vcpu, "acknowledge", None)
                if seen is not None:
                    seen.set()
                while not vcpu.quit and not vcpu.start_pending:
                    vcpu.cond.wait()
                    seen = getattr(vcpu, "acknowledge", None)
                    if seen is not None:
                        seen.set()
                if vcpu.quit:
                    return
                vcpu.start_pending = False
                epoch = vcpu.epoch
            assert self.machine is not None
            with self.machine.lock:  # (also never gives up: the thread is busy here)
                if vcpu.epoch == epoch:
                    self.machine.vcpu_started(vcpu.slot.index)


class LeavesThreadRunning(Threaded):
    """Breaks *unrealize-joins*: unrealize tells the thread to stop but does not wait."""

    name = "broken-unrealize-no-join"

    def unrealize_vcpu(self, vcpu: BackendVcpu) -> None:
        own = self._own(vcpu)
        thread = own.thread

        def linger() -> None:
            time.sleep(1.0)
        own.thread = None
        with own.cond:
            own.quit, own.powered = True, False
            own.epoch += 1
            own.cond.notify_all()
        if thread is not None:
            threading.Thread(target=linger, name="threaded-lingering", daemon=True).start()
