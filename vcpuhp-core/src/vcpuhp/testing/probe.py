"""Watching a backend from outside: call records, vCPU object tracking, failure injection.

:func:`probed` makes, at test time, a subclass of the backend class under
test whose contract methods each record the call (method, CPU, duration,
thread) in a :class:`ContractProbe` and then run the backend's own method --
unless a failure was armed for that method, in which case the call raises it
*instead* (once), as a backend would that failed before doing anything. The
probe also keeps a weak reference to every vCPU object ``create_vcpu``
returned, so the suite can count the live ones itself instead of trusting
``stats()``.
"""

from __future__ import annotations

import functools
import gc
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from vcpuhp.backend import AcceleratorBackend, BackendVcpu
from vcpuhp.machine import VirtMachine

CONTRACT_METHODS: Final = (
    "create_irqchip", "attach", "create_vcpu", "realize_vcpu", "vcpus_created", "power_on",
    "power_off", "kick", "unrealize_vcpu", "destroy_vcpu", "pause", "resume", "stats", "close",
)
"""The :class:`~vcpuhp.backend.AcceleratorBackend` methods the machine calls."""

_B = TypeVar("_B", bound=AcceleratorBackend)


@dataclass(frozen=True)
class CallRecord:
    """One contract call as the machine made it."""

    method: str
    cpu: int | None
    seconds: float
    thread: str
    failed: bool


@dataclass
class _Armed:
    method: str
    error: Callable[[], BaseException]
    when: Callable[[int | None], bool]


@dataclass
class ContractProbe:
    """What one backend instance was asked to do, and what it made."""

    calls: list[CallRecord] = field(default_factory=list)
    injected: list[CallRecord] = field(default_factory=list)
    _vcpus: list[weakref.ref[BackendVcpu]] = field(default_factory=list)
    _armed: list[_Armed] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self, method: str, error: Callable[[], BaseException],
            when: Callable[[int | None], bool] | None = None) -> None:
        """Make the next call of ``method`` (for a CPU ``when`` accepts) raise ``error()``
        instead of running; once."""
        if method not in CONTRACT_METHODS:
            raise ValueError(f"{method!r} is not a contract method: {', '.join(CONTRACT_METHODS)}")
        with self._lock:
            self._armed.append(_Armed(method, error, when or (lambda _cpu: True)))

    def disarm(self) -> None:
        """Forget every armed failure that has not fired."""
        with self._lock:
            self._armed.clear()

    @property
    def armed(self) -> list[str]:
        """Methods with a failure still armed."""
        with self._lock:
            return [a.method for a in self._armed]

    def _take(self, method: str, cpu: int | None) -> _Armed | None:
        with self._lock:
            for armed in self._armed:
                if armed.method == method and armed.when(cpu):
                    self._armed.remove(armed)
                    return armed
        return None

    def _record(self, record: CallRecord) -> None:
        with self._lock:
            self.calls.append(record)

    def track(self, vcpu: object) -> None:
        """Remember a vCPU object ``create_vcpu`` returned (weakly)."""
        if isinstance(vcpu, BackendVcpu):
            with self._lock:
                self._vcpus.append(weakref.ref(vcpu))

    def live_vcpus(self) -> list[BackendVcpu]:
        """Every vCPU object this backend created that still exists (after a full GC)."""
        gc.collect()
        with self._lock:
            alive = [ref() for ref in self._vcpus]
        return [vcpu for vcpu in alive if vcpu is not None]

    def created(self) -> int:
        """How many vCPU objects ``create_vcpu`` returned so far."""
        with self._lock:
            return len(self._vcpus)

    def durations(self, method: str) -> list[CallRecord]:
        """The records of every call of ``method``."""
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def methods(self) -> list[str]:
        """The names of the calls so far, in order."""
        with self._lock:
            return [c.method for c in self.calls]


def _cpu_of(args: tuple[Any, ...]) -> int | None:
    for arg in args:
        slot = getattr(arg, "slot", arg)
        index = getattr(slot, "index", None)
        if isinstance(index, int):
            return index
    return None


def _wrap(method: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def probed_method(self: Any, *args: Any) -> Any:
        probe: ContractProbe = self.vcpuhp_probe
        cpu = _cpu_of(args)
        thread = threading.current_thread().name
        armed = probe._take(method, cpu)
        if armed is not None:
            record = CallRecord(method, cpu, 0.0, thread, True)
            probe._record(record)
            probe.injected.append(record)
            raise armed.error()
        start = time.perf_counter()
        failed = True
        try:
            result = original(self, *args)
            failed = False
        finally:
            probe._record(CallRecord(method, cpu, time.perf_counter() - start, thread, failed))
        if method == "create_vcpu":
            probe.track(result)
        return result

    return probed_method


@functools.cache
def probed(cls: type[_B]) -> type[_B]:
    """A subclass of backend class ``cls`` whose contract methods report to a probe.

    Instances carry their :class:`ContractProbe` as ``vcpuhp_probe``; the
    backend's own code runs unchanged (same ``name``, ``capabilities``,
    options), so the suite tests exactly what ``cls`` does.
    """
    namespace: dict[str, Any] = {
        method: _wrap(method, getattr(cls, method)) for method in CONTRACT_METHODS
    }
    original_init = cls.__init__

    def init(self: Any, options: Mapping[str, str] | None = None) -> None:
        self.vcpuhp_probe = ContractProbe()
        original_init(self, options)

    namespace["__init__"] = init
    namespace["__module__"] = cls.__module__
    namespace["__qualname__"] = f"Probed{cls.__qualname__}"
    return type(f"Probed{cls.__name__}", (cls,), namespace)


def probe_of(backend: AcceleratorBackend) -> ContractProbe:
    """The probe of a backend made by a :func:`probed` class."""
    probe = getattr(backend, "vcpuhp_probe", None)
    if not isinstance(probe, ContractProbe):
        raise TypeError(f"{backend!r} was not made from a probed() class")
    return probe


@dataclass(frozen=True)
class StartRecord:
    """A ``vcpu_started`` call and the CPU's state when it arrived."""

    index: int
    state: str


class ProbedMachine(VirtMachine):
    """A :class:`VirtMachine` that records every ``vcpu_started`` call it receives."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.starts: list[StartRecord] = []
        super().__init__(*args, **kwargs)

    def vcpu_started(self, index: int) -> None:
        """Record the call, then handle it as the machine does."""
        with self.lock:
            self.starts.append(StartRecord(index, self.vcpus[index].state.value))
            super().vcpu_started(index)


__all__ = [
    "CONTRACT_METHODS",
    "CallRecord",
    "ContractProbe",
    "ProbedMachine",
    "StartRecord",
    "probe_of",
    "probed",
]
