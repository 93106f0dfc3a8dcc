"""Typed results of ``KVM_RUN`` (rust-vmm's ``VcpuExit``, in Python).

:meth:`vcpuhp_kvm.vcpu.VcpuFd.run` decodes ``struct kvm_run`` into one of these.
Two of them carry a reply for the guest, which must be given before the vCPU
runs again: :meth:`MmioRead.complete` (the loaded value) and
:meth:`Hypercall.set_return` (x0, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from vcpuhp_kvm import regs, uapi
from vcpuhp_kvm.cdefs import ffi


class _Registers(Protocol):
    def get_one_reg(self, reg_id: int) -> int: ...

    def set_one_reg(self, reg_id: int, value: int) -> None: ...


class VcpuExit:
    """Base of every ``KVM_RUN`` result."""


@dataclass(frozen=True)
class MmioWrite(VcpuExit):
    """``KVM_EXIT_MMIO`` store: the guest wrote ``data`` (``size`` bytes, LE) at ``addr``."""

    addr: int
    size: int
    data: int


@dataclass(frozen=True)
class MmioRead(VcpuExit):
    """``KVM_EXIT_MMIO`` load of ``size`` bytes at ``addr``.

    Call :meth:`complete` with the value before the vCPU runs again; a load
    left uncompleted reads 0.
    """

    addr: int
    size: int
    _mmio_data: Any = field(repr=False, compare=False)

    def complete(self, value: int) -> None:
        """Give the guest ``value`` (truncated to ``size`` bytes) as the loaded data."""
        raw = (value & ((1 << (8 * self.size)) - 1)).to_bytes(self.size, "little")
        for i, byte in enumerate(raw):
            self._mmio_data[i] = byte


@dataclass(frozen=True)
class Hypercall(VcpuExit):
    """``KVM_EXIT_HYPERCALL``: an SMCCC call the SMCCC filter forwards to userspace.

    ``nr`` is the function id (the guest's w0); ``args`` are x1-x3, read with
    ``KVM_GET_ONE_REG`` since KVM does not fill ``kvm_run.hypercall.args`` on
    arm64 (every PSCI function takes at most three arguments; read more
    registers with :meth:`~vcpuhp_kvm.vcpu.VcpuFd.get_one_reg`). The guest's PC
    is already past the ``hvc``/``smc``.
    """

    nr: int
    args: tuple[int, ...]
    flags: int
    _vcpu: _Registers = field(repr=False, compare=False)

    @property
    def smc(self) -> bool:
        """The guest used the SMC conduit (else HVC)."""
        return bool(self.flags & uapi.KVM_HYPERCALL_EXIT_SMC)

    def set_return(self, *values: int) -> None:
        """Write the call's results into x0, x1, ... (negative values as two's complement)."""
        for n, value in enumerate(values):
            self._vcpu.set_one_reg(regs.x(n), value & 0xFFFF_FFFF_FFFF_FFFF)


@dataclass(frozen=True)
class SystemEvent(VcpuExit):
    """``KVM_EXIT_SYSTEM_EVENT``: ``type`` is ``KVM_SYSTEM_EVENT_*`` (shutdown, reset ...)."""

    type: int
    flags: int
    data: tuple[int, ...] = ()

    @property
    def shutdown(self) -> bool:
        """A PSCI SYSTEM_OFF that KVM handled itself."""
        return self.type == uapi.KVM_SYSTEM_EVENT_SHUTDOWN

    @property
    def reset(self) -> bool:
        """A PSCI SYSTEM_RESET that KVM handled itself."""
        return self.type == uapi.KVM_SYSTEM_EVENT_RESET


@dataclass(frozen=True)
class FailEntry(VcpuExit):
    """``KVM_EXIT_FAIL_ENTRY``: the vCPU could not be entered (e.g. run on an unsupported CPU)."""

    hardware_entry_failure_reason: int
    cpu: int


@dataclass(frozen=True)
class InternalError(VcpuExit):
    """``KVM_EXIT_INTERNAL_ERROR`` with KVM's ``suberror`` and diagnostic words."""

    suberror: int
    data: tuple[int, ...]


@dataclass(frozen=True)
class ArmNisv(VcpuExit):
    """``KVM_EXIT_ARM_NISV``: a data abort outside memory without a valid syndrome.

    KVM reports it only with ``KVM_CAP_ARM_NISV_TO_USER`` enabled; otherwise
    ``KVM_RUN`` fails with ``ENOSYS`` for such an access.
    """

    esr_iss: int
    fault_ipa: int


@dataclass(frozen=True)
class Interrupted(VcpuExit):
    """``KVM_RUN`` returned ``EINTR``: a kick (signal or ``immediate_exit``) stopped it."""


@dataclass(frozen=True)
class UnknownExit(VcpuExit):
    """An exit reason this layer does not decode (``KVM_EXIT_UNKNOWN`` or newer ones)."""

    exit_reason: int
    hardware_exit_reason: int = 0


HYPERCALL_ARGS: Final = 3
"""x1-x3: the most arguments a PSCI function takes."""


def decode(run: Any, vcpu: _Registers) -> VcpuExit:
    """The typed exit that ``run`` (a ``struct kvm_run *``) describes after a ``KVM_RUN``.

    ``vcpu`` reads the hypercall arguments and later takes its return values.
    """
    reason = int(run.exit_reason)
    if reason == uapi.KVM_EXIT_MMIO:
        mmio = run.mmio
        addr, size = int(mmio.phys_addr), int(mmio.len)
        if mmio.is_write:
            data = int.from_bytes(ffi.buffer(mmio.data, size)[:], "little")
            return MmioWrite(addr, size, data)
        ffi.memmove(mmio.data, bytes(8), 8)
        return MmioRead(addr, size, mmio.data)
    if reason == uapi.KVM_EXIT_HYPERCALL:
        args = tuple(vcpu.get_one_reg(regs.x(n)) for n in range(1, HYPERCALL_ARGS + 1))
        return Hypercall(int(run.hypercall.nr), args, int(run.hypercall.flags), vcpu)
    if reason == uapi.KVM_EXIT_SYSTEM_EVENT:
        event = run.system_event
        ndata = min(int(event.ndata), 16)
        return SystemEvent(int(event.type), int(event.flags),
                           tuple(int(event.data[i]) for i in range(ndata)))
    if reason == uapi.KVM_EXIT_FAIL_ENTRY:
        fail = run.fail_entry
        return FailEntry(int(fail.hardware_entry_failure_reason), int(fail.cpu))
    if reason == uapi.KVM_EXIT_INTERNAL_ERROR:
        internal = run.internal
        ndata = min(int(internal.ndata), 16)
        return InternalError(int(internal.suberror),
                             tuple(int(internal.data[i]) for i in range(ndata)))
    if reason == uapi.KVM_EXIT_ARM_NISV:
        return ArmNisv(int(run.arm_nisv.esr_iss), int(run.arm_nisv.fault_ipa))
    if reason == uapi.KVM_EXIT_INTR:
        return Interrupted()
    return UnknownExit(reason, int(run.hw.hardware_exit_reason))
