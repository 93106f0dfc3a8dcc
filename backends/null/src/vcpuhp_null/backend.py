"""The null backend: the accelerator contract with no execution behind it.

It keeps exact counts of what it created so tests can check that plug /
unplug cycles leak nothing, and documents by example what a real backend
must do at each step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vcpuhp.backend import AcceleratorBackend, BackendCapabilities, BackendVcpu
from vcpuhp.errors import BackendError, ConfigError, StateError
from vcpuhp.topology import CpuSlot

_TRUE = ("1", "yes", "on", "true")
_FALSE = ("0", "no", "off", "false")


class NullVcpu(BackendVcpu):
    """A vCPU with a power flag and nothing else."""

    def __init__(self, slot: CpuSlot) -> None:
        super().__init__(slot)
        self.powered = False
        self.start_pending = False
        self.args: tuple[int, ...] = ()
        self.entry_point = 0


class NullBackend(AcceleratorBackend):
    """No guest code runs; vCPUs start the moment they are powered on.

    Options (``--accel null,defer-start=on``): ``defer-start`` keeps a
    powered-on vCPU in ``ON_PENDING`` until the driver calls :meth:`start`,
    so tests can observe PSCI's ``ON_PENDING`` answers.
    """

    name = "null"
    distribution = "vcpuhp-null"
    capabilities = BackendCapabilities(executes_guest_code=False, parks_vcpus=True)

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        unknown = set(self.options) - {"defer-start"}
        if unknown:
            raise ConfigError(
                f"null backend: unknown option(s) {', '.join(sorted(unknown))}; valid: defer-start"
            )
        flag = self.options.get("defer-start", "off").lower()
        if flag not in _TRUE + _FALSE:
            raise ConfigError(f"null backend: defer-start={flag!r}; use on or off")
        self.defer_start = flag in _TRUE
        self.vcpus: dict[int, NullVcpu] = {}
        self.created = 0
        self.destroyed = 0
        self.realizations = 0
        self.paused = False

    def create_vcpu(self, slot: CpuSlot) -> NullVcpu:
        if slot.index in self.vcpus:
            raise BackendError(f"null: vCPU for CPU {slot.index} already exists")
        vcpu = NullVcpu(slot)
        self.vcpus[slot.index] = vcpu
        self.created += 1
        return vcpu

    def _own(self, vcpu: BackendVcpu) -> NullVcpu:
        if not isinstance(vcpu, NullVcpu) or self.vcpus.get(vcpu.slot.index) is not vcpu:
            raise BackendError(f"null: {vcpu!r} is not a vCPU of this backend")
        return vcpu

    def realize_vcpu(self, vcpu: BackendVcpu) -> None:
        own = self._own(vcpu)
        if own.realized:
            raise BackendError(f"null: {vcpu!r} is already realized")
        own.powered = own.start_pending = False
        self.realizations += 1

    def unrealize_vcpu(self, vcpu: BackendVcpu) -> None:
        own = self._own(vcpu)
        if own.powered:
            raise BackendError(f"null: cannot unrealize powered-on {vcpu!r}")

    def destroy_vcpu(self, vcpu: BackendVcpu) -> None:
        own = self._own(vcpu)
        del self.vcpus[own.slot.index]
        self.destroyed += 1

    def power_on(self, vcpu: BackendVcpu, entry_point: int, args: Sequence[int]) -> None:
        own = self._own(vcpu)
        own.powered, own.entry_point, own.args = True, entry_point, tuple(args)
        if self.defer_start:
            own.start_pending = True
        else:
            self._started(own)

    def start(self, index: int) -> None:
        """Let a deferred vCPU begin (``defer-start=on``)."""
        vcpu = self.vcpus.get(index)
        if vcpu is None or not vcpu.start_pending:
            raise StateError(f"null: CPU {index} has no deferred start pending")
        self._started(vcpu)

    def _started(self, vcpu: NullVcpu) -> None:
        vcpu.start_pending = False
        assert self.machine is not None
        self.machine.vcpu_started(vcpu.slot.index)

    def power_off(self, vcpu: BackendVcpu) -> None:
        own = self._own(vcpu)
        own.powered = own.start_pending = False

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def stats(self) -> dict[str, Any]:
        return {
            "vcpus": len(self.vcpus),
            "total_created": self.created,
            "total_destroyed": self.destroyed,
            "realized": sum(1 for v in self.vcpus.values() if v.realized),
            "powered": sum(1 for v in self.vcpus.values() if v.powered),
            "total_realizations": self.realizations,
            "threads": 0,
        }

    def close(self) -> None:
        self.vcpus.clear()


class NullUnparkedBackend(NullBackend):
    """The null backend without parking: vCPUs are created on plug, destroyed on eject.

    Not registered as an entry point; tests use it to cover non-parking backends.
    """

    name = "null-unparked"
    capabilities = BackendCapabilities(executes_guest_code=False, parks_vcpus=False)
