"""The machine's PSCI firmware: the one place that decides what a PSCI call does.

Every backend routes the guest's PSCI calls here (the null test driver
directly, tcg-unicorn from its ``hvc #0`` hook, kvm from
``KVM_EXIT_HYPERCALL`` through the SMCCC filter), so the hotplug policy is
the same everywhere: ``CPU_ON`` of a CPU that is not enabled is ``DENIED``
(the seeds' rule: the firmware enforces ``_STA.Enabled``), a policy plugin
may deny any other ``CPU_ON``, and ``CPU_OFF`` of the last running CPU is
``DENIED`` so the machine never silently stops.

Every bad argument is a PSCI return code; only a caller that cannot make
calls at all (unknown, not running, machine shut down) is a
:class:`~vcpuhp.errors.GuestError`. Calls run with the machine lock held.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from vcpuhp import events as ev
from vcpuhp.errors import GuestError, VcpuhpError
from vcpuhp.psci import (
    IMPLEMENTED,
    MIGRATE_INFO_TYPE_NOT_NEEDED,
    PSCI_VERSION_1_1,
    AffinityState,
    PsciFunction,
    PsciReturn,
    is_smc64,
    target_affinity,
)
from vcpuhp.vcpu import Vcpu, VcpuState

if TYPE_CHECKING:
    from vcpuhp.machine import VirtMachine

_log = logging.getLogger(__name__)


class PsciFirmware:
    """PSCI 1.1 as this machine's firmware implements it."""

    def __init__(self, machine: VirtMachine) -> None:
        self._machine = machine

    def call(self, caller: int, function_id: int, *args: int) -> int:
        """Handle a call made by CPU ``caller``; returns the signed value for ``x0``."""
        machine = self._machine
        if not 0 <= caller < len(machine.vcpus):
            raise GuestError(f"CPU {caller} does not exist (0-{len(machine.vcpus) - 1})")
        source = machine.vcpus[caller]
        if machine.is_shut_down:
            raise GuestError("machine is shut down: no CPU runs")
        if source.state is not VcpuState.ONLINE:
            raise GuestError(
                f"CPU {caller} is {source.state.value}: only a running CPU can call PSCI"
            )
        fid = function_id & 0xFFFF_FFFF
        a = [*args, 0, 0, 0][:3]
        if not is_smc64(fid):  # SMCCC: a 32-bit call sees only w1-w3
            a = [x & 0xFFFF_FFFF for x in a]
        if fid == PsciFunction.PSCI_VERSION:
            return PSCI_VERSION_1_1
        if fid in (PsciFunction.CPU_ON, PsciFunction.CPU_ON_64):
            return self._cpu_on(source, fid, a[0], a[1], a[2])
        if fid == PsciFunction.CPU_OFF:
            return self._cpu_off(source)
        if fid in (PsciFunction.AFFINITY_INFO, PsciFunction.AFFINITY_INFO_64):
            return self._affinity_info(fid, a[0], a[1])
        if fid in (PsciFunction.CPU_SUSPEND, PsciFunction.CPU_SUSPEND_64):
            return PsciReturn.SUCCESS  # standby that wakes at once: a WFI
        if fid == PsciFunction.MIGRATE_INFO_TYPE:
            return MIGRATE_INFO_TYPE_NOT_NEEDED
        if fid == PsciFunction.PSCI_FEATURES:
            return PsciReturn.SUCCESS if a[0] & 0xFFFF_FFFF in IMPLEMENTED else \
                PsciReturn.NOT_SUPPORTED
        if fid == PsciFunction.SYSTEM_OFF:
            machine.guest_system_off()
            return PsciReturn.SUCCESS
        if fid == PsciFunction.SYSTEM_RESET:
            machine.guest_system_reset()
            return PsciReturn.SUCCESS
        return PsciReturn.NOT_SUPPORTED

    def _target(self, fid: int, mpidr: int) -> Vcpu | None:
        affinity = target_affinity(fid, mpidr)
        slot = self._machine.topology.by_arch_id(affinity) if affinity is not None else None
        return self._machine.vcpus[slot.index] if slot is not None else None

    def _cpu_on(self, caller: Vcpu, fid: int, mpidr: int, entry: int, context: int) -> int:
        machine = self._machine
        target = self._target(fid, mpidr)
        if target is None:
            return PsciReturn.INVALID_PARAMETERS
        if not target.enabled:
            return PsciReturn.DENIED
        if target.state is VcpuState.ONLINE:
            return PsciReturn.ALREADY_ON
        if target.state is VcpuState.ON_PENDING:
            return PsciReturn.ON_PENDING
        memory = machine.memory
        if entry % 4 or memory is None or not memory.contains(entry, 4):
            return PsciReturn.INVALID_ADDRESS
        reason = machine.ask("vcpuhp_cpu_on_allowed", caller=caller, target=target,
                             entry_point=entry, context_id=context)
        if reason is not None:
            _log.info("CPU_ON of CPU %d denied by policy: %s", target.slot.index, reason)
            return PsciReturn.DENIED
        previous = (target.state, target.entry_point, target.context_id)
        machine.irqchip.reset_cpu_interface(target.slot.index)
        target.advance("cpu_on")
        target.entry_point, target.context_id = entry, context
        try:
            machine.calls.power_on(target.handle, entry, (context,))
        except VcpuhpError:
            _log.exception("backend failed to power on CPU %d", target.slot.index)
            target.state, target.entry_point, target.context_id = previous
            return PsciReturn.INTERNAL_FAILURE
        return PsciReturn.SUCCESS

    def _cpu_off(self, caller: Vcpu) -> int:
        machine = self._machine
        if not any(v.online for v in machine.vcpus if v is not caller):
            return PsciReturn.DENIED  # the last running CPU keeps the machine alive
        try:
            machine.calls.power_off(caller.handle)
        except VcpuhpError:
            _log.exception("backend failed to power off CPU %d", caller.slot.index)
            return PsciReturn.DENIED
        caller.advance("cpu_off")
        # A powered-off CPU's interface is in reset, so a CPU_ON that fails later
        # leaves the GIC exactly as it was.
        machine.irqchip.reset_cpu_interface(caller.slot.index)
        machine.events.emit(ev.CPU_POWERED_OFF, cpu_index=caller.slot.index,
                            device=caller.device_id)
        machine.notify("vcpuhp_cpu_powered_off", vcpu=caller)
        return PsciReturn.SUCCESS

    def _affinity_info(self, fid: int, mpidr: int, level: int) -> int:
        target = self._target(fid, mpidr)
        if target is None or level != 0:
            return PsciReturn.INVALID_PARAMETERS
        if target.state is VcpuState.ONLINE:
            return AffinityState.ON
        if target.state is VcpuState.ON_PENDING:
            return AffinityState.ON_PENDING
        return AffinityState.OFF


__all__ = ["PsciFirmware"]
