"""The machine's calls into its backend, held to the contract's error rule.

Every backend method the machine calls goes through :class:`CheckedBackend`:

* a :class:`~vcpuhp.errors.ConfigError` (a configuration the backend cannot
  run) passes through unchanged;
* any other :class:`~vcpuhp.errors.VcpuhpError` becomes a
  :class:`~vcpuhp.errors.BackendCallError` that names the backend, the method
  and the CPU, with the original as its ``__cause__``;
* anything else (a ``RuntimeError``, an ``OSError`` ...) is a contract
  violation: a :class:`~vcpuhp.errors.ContractViolation` whose message quotes
  the rule (``contract: realize_vcpu must raise BackendError having undone its
  partial work``), logged with its traceback.

So a broken backend can never take down a monitor or QMP session with an
unexpected exception type, and whoever catches the error learns which
contract method failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from vcpuhp.backend import AcceleratorBackend, BackendVcpu, rule
from vcpuhp.errors import BackendCallError, ConfigError, ContractViolation, VcpuhpError
from vcpuhp.topology import CpuSlot

if TYPE_CHECKING:
    from vcpuhp.description import MachineDescription
    from vcpuhp.irqchip import InterruptController
    from vcpuhp.machine import VirtMachine

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


def _cpu(subject: BackendVcpu | CpuSlot | None) -> str:
    if isinstance(subject, BackendVcpu):
        return f"cpu {subject.slot.index}"
    if isinstance(subject, CpuSlot):
        return f"cpu {subject.index}"
    return ""


class CheckedBackend:
    """The contract methods of ``backend``, each call checked against the error rule."""

    def __init__(self, backend: AcceleratorBackend) -> None:
        self.backend = backend

    def call(self, method: str, subject: BackendVcpu | CpuSlot | None,
             fn: Callable[..., _T], *args: Any) -> _T:
        """Call ``fn(*args)`` (the backend's ``method``), translating its errors."""
        name = getattr(self.backend, "name", type(self.backend).__name__)
        where = _cpu(subject)
        call = f"{method}({where})"
        try:
            return fn(*args)
        except ConfigError:
            raise
        except VcpuhpError as exc:
            raise BackendCallError(f"backend {name!r}: {call} failed: {exc}",
                                   backend=name, method=method) from exc
        except Exception as exc:
            _log.error("backend %r: %s raised %s", name, call, type(exc).__name__, exc_info=True)
            raise ContractViolation(
                f"backend {name!r}: {call} raised {type(exc).__name__}: {exc} "
                f"({rule('errors', method)})", backend=name, method=method,
            ) from exc

    def create_irqchip(self, description: MachineDescription) -> InterruptController:
        """:meth:`AcceleratorBackend.create_irqchip`."""
        return self.call("create_irqchip", None, self.backend.create_irqchip, description)

    def attach(self, machine: VirtMachine) -> None:
        """:meth:`AcceleratorBackend.attach`."""
        self.call("attach", None, self.backend.attach, machine)

    def create_vcpu(self, slot: CpuSlot) -> BackendVcpu:
        """:meth:`AcceleratorBackend.create_vcpu`; the result must be a vCPU of ``slot``."""
        vcpu = self.call("create_vcpu", slot, self.backend.create_vcpu, slot)
        if not isinstance(vcpu, BackendVcpu) or vcpu.slot != slot:
            name = getattr(self.backend, "name", type(self.backend).__name__)
            raise ContractViolation(
                f"backend {name!r}: create_vcpu(cpu {slot.index}) returned {vcpu!r}, not a "
                f"BackendVcpu of that slot", backend=name, method="create_vcpu",
            )
        return vcpu

    def realize_vcpu(self, vcpu: BackendVcpu) -> None:
        """:meth:`AcceleratorBackend.realize_vcpu`."""
        self.call("realize_vcpu", vcpu, self.backend.realize_vcpu, vcpu)

    def vcpus_created(self) -> None:
        """:meth:`AcceleratorBackend.vcpus_created`."""
        self.call("vcpus_created", None, self.backend.vcpus_created)

    def power_on(self, vcpu: BackendVcpu, entry_point: int, args: Sequence[int]) -> None:
        """:meth:`AcceleratorBackend.power_on`."""
        self.call("power_on", vcpu, self.backend.power_on, vcpu, entry_point, args)

    def power_off(self, vcpu: BackendVcpu) -> None:
        """:meth:`AcceleratorBackend.power_off`."""
        self.call("power_off", vcpu, self.backend.power_off, vcpu)

    def kick(self, vcpu: BackendVcpu) -> None:
        """:meth:`AcceleratorBackend.kick`."""
        self.call("kick", vcpu, self.backend.kick, vcpu)

    def unrealize_vcpu(self, vcpu: BackendVcpu) -> None:
        """:meth:`AcceleratorBackend.unrealize_vcpu`."""
        self.call("unrealize_vcpu", vcpu, self.backend.unrealize_vcpu, vcpu)

    def destroy_vcpu(self, vcpu: BackendVcpu) -> None:
        """:meth:`AcceleratorBackend.destroy_vcpu`."""
        self.call("destroy_vcpu", vcpu, self.backend.destroy_vcpu, vcpu)

    def pause(self) -> None:
        """:meth:`AcceleratorBackend.pause`."""
        self.call("pause", None, self.backend.pause)

    def resume(self) -> None:
        """:meth:`AcceleratorBackend.resume`."""
        self.call("resume", None, self.backend.resume)

    def stats(self) -> dict[str, Any]:
        """:meth:`AcceleratorBackend.stats`."""
        return self.call("stats", None, self.backend.stats)

    def close(self) -> None:
        """:meth:`AcceleratorBackend.close`."""
        self.call("close", None, self.backend.close)


__all__ = ["CheckedBackend"]
