"""Hook specifications: the documented surface for plugins and third-party backends.

Plugins are registered under the ``vcpuhp.plugins`` entry-point group (or
passed to :class:`~vcpuhp.plugins.PluginManager`): a module of hook
functions, or a class that vcpuhp instantiates once per machine with that
machine's options (see :mod:`vcpuhp.plugins` and
:class:`~vcpuhp.plugin_settings.PluginSettings`). Hook implementations are
functions named ``vcpuhp_*``, marked with :data:`hookimpl` or not; one whose
name is not a hook below is a load failure, so a misspelling is caught.

Policy hooks run with ``firstresult=True``: the first implementation that
returns something other than ``None`` decides, and a returned string refuses
the request with that reason. Observer hooks are called on every plugin;
their return values are ignored. All hooks run with the machine lock held:
do not block in them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from vcpuhp.backend import AcceleratorBackend
    from vcpuhp.machine import VirtMachine
    from vcpuhp.plugins import BackendRegistry
    from vcpuhp.topology import CpuSlot
    from vcpuhp.vcpu import Vcpu

PROJECT = "vcpuhp"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def vcpuhp_register_backends(register: BackendRegistry) -> None:
    """Register accelerator backend classes.

    Called once when the plugin manager is built, after the
    ``vcpuhp.backends`` entry points are read.

    :param register: call ``register.add(BackendClass)``; a name already
        taken or an invalid name raises :class:`ValueError` at once.
    """


@hookspec(firstresult=True)
def vcpuhp_device_add_allowed(
    machine: VirtMachine, slot: CpuSlot, driver: str, device_id: str
) -> str | None:
    """May ``device_add`` plug a CPU into ``slot``?

    Called after the request was validated and before anything changes.
    Stops at the first non-``None`` result.

    :param machine: the machine.
    :param slot: the free slot the request names.
    :param driver: the QOM CPU type requested.
    :param device_id: the ``id`` requested.
    :return: ``None`` to allow, or a reason string to refuse.
    """


@hookspec(firstresult=True)
def vcpuhp_device_del_allowed(machine: VirtMachine, vcpu: Vcpu) -> str | None:
    """May ``device_del`` ask the guest to release ``vcpu``?

    Called after the built-in checks (unknown id, cold-booted CPU) passed.
    Stops at the first non-``None`` result.

    :return: ``None`` to allow, or a reason string to refuse.
    """


@hookspec(firstresult=True)
def vcpuhp_cpu_on_allowed(
    machine: VirtMachine, caller: Vcpu, target: Vcpu, entry_point: int, context_id: int
) -> str | None:
    """May PSCI ``CPU_ON`` from ``caller`` start ``target``?

    Called only for an enabled, powered-off target (the firmware's own policy
    already answered every other case). A refusal makes the call return
    ``DENIED``. Stops at the first non-``None`` result.

    :return: ``None`` to allow, or a reason string to deny.
    """


@hookspec
def vcpuhp_cpu_plugged(machine: VirtMachine, vcpu: Vcpu) -> None:
    """``vcpu`` was realized and enabled by ``device_add`` (the insert event is raised)."""


@hookspec
def vcpuhp_cpu_unplugged(machine: VirtMachine, vcpu: Vcpu, device_id: str | None) -> None:
    """``vcpu`` was ejected, unrealized and (if the backend parks) parked.

    :param device_id: the id it had; ``vcpu.device_id`` is already cleared.
    """


@hookspec
def vcpuhp_cpu_powered_on(machine: VirtMachine, vcpu: Vcpu) -> None:
    """``vcpu`` started executing (after PSCI ``CPU_ON``, or the boot CPU at start)."""


@hookspec
def vcpuhp_cpu_powered_off(machine: VirtMachine, vcpu: Vcpu) -> None:
    """``vcpu`` stopped by PSCI ``CPU_OFF``."""


@hookspec
def vcpuhp_acpi_ost(machine: VirtMachine, vcpu: Vcpu, event: int, status: int) -> None:
    """The guest reported ``_OST(event, status)`` for ``vcpu``."""


@hookspec
def vcpuhp_acpi_tables_built(machine: VirtMachine, tables: Any) -> None:
    """The ACPI table set was built for ``machine`` (before it is placed in RAM)."""


@hookspec
def vcpuhp_machine_realized(machine: VirtMachine, backend: AcceleratorBackend) -> None:
    """``machine`` finished realize: every vCPU exists, the boot CPU runs."""
