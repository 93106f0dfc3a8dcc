"""The ``virt`` machine with hot-pluggable vCPUs: vcpuhp's stable front.

Build it from a :class:`~vcpuhp.config.MachineConfig`, :meth:`VirtMachine.realize`
it, then plug and unplug CPUs with :meth:`~VirtMachine.device_add` /
:meth:`~VirtMachine.device_del`, query it, subscribe to its
:attr:`~VirtMachine.events`, and :meth:`~VirtMachine.shutdown` it. The QMP
server, the CLI monitor and the null backend's test protocol are thin layers
on these methods.

The machine is the front; its parts live in their own modules: the PSCI
firmware (:mod:`vcpuhp.psci_firmware`), the guest's address space
(:mod:`vcpuhp.mmio`), the interrupt controller (:mod:`vcpuhp.irqchip`: the
userspace GIC model or the backend's in-kernel one), the QMP-shaped views
(:mod:`vcpuhp.views`), the ACPI hotplug registers and GED
(:mod:`vcpuhp.devices`).

Locking: every public method takes the machine lock; every refused request
raises a :class:`~vcpuhp.errors.VcpuhpError` and leaves the machine as it
was. Events are emitted under the lock (so their order is the order of the
changes) but delivered to listeners on the event bus's own thread, never
with the machine lock held (see :mod:`vcpuhp.events`). Plugin hooks do run
with the lock held: they must not block or call back into the machine from
another thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
from collections import deque
from enum import Enum
from typing import Any, Final

from vcpuhp import events as ev
from vcpuhp import memmap, views
from vcpuhp.backend import AcceleratorBackend, BackendVcpu
from vcpuhp.backend_calls import CheckedBackend
from vcpuhp.config import CPU_MODELS, MachineConfig, cpu_qom_type
from vcpuhp.description import MachineDescription
from vcpuhp.devices import GED_EVENT_CPU_HOTPLUG, AcpiGed, CpuHotplugRegisters, Pl011
from vcpuhp.devices.ged import GED_EVENT_POWER_DOWN
from vcpuhp.errors import (
    BackendCallError,
    DeviceError,
    DeviceNotFound,
    GuestError,
    PolicyRefused,
    StateError,
    VcpuhpError,
)
from vcpuhp.gic import Gicv3
from vcpuhp.irqchip import InterruptController
from vcpuhp.machine_lock import MachineLock
from vcpuhp.masks import CpuMasks
from vcpuhp.memory import GuestMemory
from vcpuhp.mmio import MmioBus, check_access
from vcpuhp.parking import ParkedVcpus
from vcpuhp.plugins import PluginManager
from vcpuhp.psci_firmware import PsciFirmware
from vcpuhp.topology import Topology
from vcpuhp.unplug_watchdog import UnplugWatchdog
from vcpuhp.vcpu import Vcpu, VcpuState

_log = logging.getLogger(__name__)
_ID_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*$")
_CPU_PROPS: Final = ("socket-id", "cluster-id", "core-id", "thread-id")
CONSOLE_LINES: Final = 1000
"""Console lines :attr:`VirtMachine.console` keeps (the oldest go first)."""
OST_EVENT_EJECT_REQUEST: Final = 0x03
OST_STATUS_SUCCESS: Final = 0x00
OST_STATUS_EJECT_IN_PROGRESS: Final = 0x84
"""What Linux reports (``ACPI_OST_SC_EJECT_IN_PROGRESS``) before every eject."""


class RunState(Enum):
    """QMP ``RunState`` values the machine can be in."""

    PRELAUNCH = "prelaunch"
    RUNNING = "running"
    PAUSED = "paused"
    SHUTDOWN = "shutdown"
    GUEST_PANICKED = "guest-panicked"
    """A vCPU fault left no CPU running (QEMU's ``guest-panicked``)."""


class VirtMachine:
    """An ARM64 ``virt`` machine whose vCPUs can be plugged and unplugged."""

    def __init__(
        self,
        config: MachineConfig,
        *,
        backend: AcceleratorBackend | None = None,
        plugins: PluginManager | None = None,
    ) -> None:
        """Build the machine (unrealized) from ``config``.

        :param backend: a backend instance to use instead of creating
            ``config.accel`` (tests, wrapped backends).
        :param plugins: the plugin manager; by default one loading the plugins
            ``config.plugins`` selects. Either way, a plugin that failed to load
            stops construction with a :class:`~vcpuhp.errors.PluginError`
            naming it and how to disable it (plugins fail closed).
        """
        self.config = config
        self.plugins = (plugins if plugins is not None
                        else PluginManager(settings=config.plugins))
        self.plugins.check()  # fail closed: never run without a plugin that failed to load
        self.backend = backend if backend is not None else self.plugins.backends.create(
            config.accel, dict(config.backend_options)
        )
        self.calls = CheckedBackend(self.backend)
        """The backend's contract methods, as the machine calls them (errors checked)."""
        self.topology = Topology(config.smp)
        self.description = MachineDescription.of(config, self.topology)
        self.events = ev.EventBus()
        self.vcpus: tuple[Vcpu, ...] = tuple(
            Vcpu(slot, cold_booted=self.topology.is_cold_booted(slot))
            for slot in self.topology.slots
        )
        self.irqchip: InterruptController = self._make_irqchip()
        self.ged = AcpiGed(lambda: self.irqchip.set_spi(memmap.ACPI_GED_SPI), self._guest_error)
        self.cpu_hotplug = CpuHotplugRegisters(self.vcpus, self)
        self.uart = Pl011(self._console_line,
                          raise_line=lambda level: self.irqchip.set_spi(memmap.UART_SPI, level))
        self.bus = MmioBus(self.irqchip)
        self.bus.add(memmap.CPU_HOTPLUG, self.cpu_hotplug)
        self.bus.add(memmap.ACPI_GED, self.ged)
        self.bus.add(memmap.UART, self.uart)
        self.firmware = PsciFirmware(self)
        self.parked = ParkedVcpus()
        self.memory: GuestMemory | None = None
        self.run_state = RunState.PRELAUNCH
        self.rsdp_address = 0
        self.acpi_tables: Any = None
        self.entry_point = 0
        self.boot_args: tuple[int, ...] = (memmap.CMDLINE_ADDR, 0)
        """``x0``, ``x1``, ... the boot CPU starts with (set by the boot protocol)."""
        self.console: deque[str] = deque(maxlen=CONSOLE_LINES)
        """The guest's last :data:`CONSOLE_LINES` console lines (every line is also a
        ``CONSOLE`` event)."""
        self._lock = MachineLock()
        self.unplug_watchdog = UnplugWatchdog(self._unplug_timed_out)
        self._unplug_requests = 0
        self._unplug_request_of: dict[int, int] = {}
        """CPU index -> the ``device_del`` request pending for it."""
        self._released = False
        """:meth:`shutdown` ran (the guest's SYSTEM_OFF only stops the CPUs)."""

    def _make_irqchip(self) -> InterruptController:
        """The backend's in-kernel controller if it has one, else the userspace GIC model."""
        if self.backend.capabilities.in_kernel_irqchip:
            return self.calls.create_irqchip(self.description)
        return Gicv3(self.topology.slots, signal=self._interrupt_signal, report=self._guest_error)

    @property
    def gic(self) -> Gicv3:
        """The userspace GIC model (backends without an in-kernel interrupt controller).

        :class:`StateError` when the backend's interrupt controller is in the
        kernel: use :attr:`irqchip` for what every machine has.
        """
        if not isinstance(self.irqchip, Gicv3):
            raise StateError(
                f"backend {self.backend.name!r} has an in-kernel interrupt controller "
                f"({type(self.irqchip).__name__}); the userspace GIC model is not used"
            )
        return self.irqchip

    # -- plugin hooks (for the machine's own parts: PSCI firmware, hotplug) -----------

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call an observer hook; a plugin that raises is logged, never breaks the machine."""
        try:
            getattr(self.plugins.hook, hook)(machine=self, **kwargs)
        except Exception:
            _log.exception("plugin observer hook %s failed", hook)

    def ask(self, hook: str, **kwargs: Any) -> str | None:
        """Call a policy hook: ``None`` allows; a reason (or a plugin that raises) refuses."""
        try:
            reason = getattr(self.plugins.hook, hook)(machine=self, **kwargs)
        except Exception as exc:
            _log.exception("plugin policy hook %s failed", hook)
            return f"policy plugin failed: {type(exc).__name__}: {exc}"
        return None if reason is None else str(reason)

    # -- life cycle -----------------------------------------------------------------

    @property
    def lock(self) -> MachineLock:
        """The machine lock (held by every public method; backends' vCPU threads wait for it
        with :meth:`~vcpuhp.machine_lock.MachineLock.acquire_unless`)."""
        return self._lock

    @property
    def is_shut_down(self) -> bool:
        """Whether the machine was shut down (by :meth:`shutdown` or the guest)."""
        return self.run_state is RunState.SHUTDOWN

    def realize(self) -> None:
        """Create every vCPU, size the GIC, park, build the boot state, start the boot CPU.

        A realize that fails releases everything it made (vCPUs, RAM, the event
        thread) and leaves the machine in ``prelaunch``, to be realized again.
        """
        try:
            self._realize_machine()
        except BaseException:
            if self.run_state is RunState.PRELAUNCH:
                self.events.close()  # outside the lock: a listener may be waiting for it
            raise

    def _realize_machine(self) -> None:
        with self._lock:
            self._require_unused("realize")
            if self.run_state is not RunState.PRELAUNCH:
                raise StateError(f"machine is already realized ({self.run_state.value})")
            self.memory = GuestMemory(self.config.memory_size)
            self.bus.memory = self.memory
            self.events.start()
            caps = self.backend.capabilities
            try:
                self.calls.attach(self)
                for vcpu in self.vcpus:
                    if caps.parks_vcpus or vcpu.cold_booted:
                        handle = self.calls.create_vcpu(vcpu.slot)
                        if vcpu.cold_booted:
                            self._realize(vcpu, handle)
                        else:
                            self.parked.park(handle)
                self.calls.vcpus_created()
                if caps.executes_guest_code:
                    self._load_boot_image()
                self.run_state = RunState.RUNNING
                self._start_boot_cpu()
            except BaseException:
                self._undo_realize()
                raise
            self.notify("vcpuhp_machine_realized", backend=self.backend)

    def _undo_realize(self) -> None:
        """A realize that failed part-way: release what it made; the machine stays
        in ``prelaunch`` and may be realized again."""
        for vcpu in self.vcpus:
            handle = vcpu.handle
            if handle is not None and handle.realized:
                with contextlib.suppress(VcpuhpError):
                    self.calls.power_off(handle)
                with contextlib.suppress(VcpuhpError):
                    self.calls.unrealize_vcpu(handle)
                handle.realized = False
            vcpu.state, vcpu.handle = VcpuState.UNPLUGGED, None
            vcpu.entry_point = vcpu.context_id = 0
            self.irqchip.set_accessible(vcpu.slot.index, False)
        self.parked = ParkedVcpus()
        with contextlib.suppress(VcpuhpError):
            self.calls.close()
        if self.memory is not None:
            self.bus.memory = None
            self.memory.close()
            self.memory = None
        self.run_state = RunState.PRELAUNCH

    def _realize(self, vcpu: Vcpu, handle: BackendVcpu) -> None:
        """Realize ``handle`` as ``vcpu`` (plugged, powered off, GIC interface wired).

        All or nothing: on failure the backend vCPU is unrealized again and the
        CPU record is untouched.
        """
        self.calls.realize_vcpu(handle)
        handle.realized = True
        try:
            vcpu.advance("plug")
            vcpu.handle = handle
            self.irqchip.set_accessible(vcpu.slot.index, True)
        except BaseException:
            vcpu.state, vcpu.handle = VcpuState.UNPLUGGED, None
            self.irqchip.set_accessible(vcpu.slot.index, False)
            with contextlib.suppress(VcpuhpError):
                self.calls.unrealize_vcpu(handle)
            handle.realized = False
            raise

    def _load_boot_image(self) -> None:
        from vcpuhp import boot

        assert self.memory is not None
        image = boot.prepare(self)
        self.entry_point = image.entry_point
        self.boot_args = image.boot_args
        self.rsdp_address = image.rsdp_address
        self.acpi_tables = image.tables

    def _start_boot_cpu(self) -> None:
        boot_cpu = self.vcpus[0]
        boot_cpu.entry_point = self.entry_point
        boot_cpu.advance("cpu_on")
        self.calls.power_on(boot_cpu.handle, self.entry_point, self.boot_args)

    def shutdown(self) -> None:
        """Stop every vCPU and release the backend and RAM. Idempotent.

        Afterwards no CPU is online, nothing is parked, the guest's register
        writes are not taken, and the machine cannot be realized or entered
        again. The events emitted until then are delivered before it returns
        (unless it is called from a listener, which cannot wait for itself).

        A backend method that fails here does not stop the shutdown: every
        other step still runs, and the first failure is raised at the end
        (a :class:`~vcpuhp.errors.BackendCallError` naming the method).
        """
        with self._lock:
            if self._released:
                return
            self._released = True
            was_running = self.run_state is not RunState.PRELAUNCH
            self.run_state = RunState.SHUTDOWN
            running = [v.handle for v in self.vcpus if v.handle is not None
                       and v.state in (VcpuState.ONLINE, VcpuState.ON_PENDING)]
            realized = [v.handle for v in self.vcpus
                        if v.handle is not None and v.handle.realized]
        self.unplug_watchdog.close()  # outside the lock: its thread may be waiting for it
        errors: list[VcpuhpError] = []

        def step(fn: Any, *args: Any) -> None:
            try:
                fn(*args)
            except VcpuhpError as exc:
                _log.error("shutdown: %s", exc)
                errors.append(exc)

        try:
            if was_running:
                # Outside the lock: unrealize joins vCPU threads that may be waiting for it.
                for handle in running:
                    step(self.calls.power_off, handle)
                for handle in realized:
                    step(self.calls.unrealize_vcpu, handle)
                    handle.realized = False
                step(self.calls.close)
        finally:
            with self._lock:
                for vcpu in self.vcpus:
                    if vcpu.state in (VcpuState.ONLINE, VcpuState.ON_PENDING):
                        vcpu.state = VcpuState.POWERED_OFF
                self.parked = ParkedVcpus()
                self.irqchip.close()
                if self.memory is not None:
                    self.bus.memory = None
                    self.memory.close()
                    self.memory = None
            self.events.close()
        if errors:
            raise errors[0]

    def _require_unused(self, what: str) -> None:
        if self._released:
            raise StateError(
                f"cannot {what}: machine was shut down; build a new VirtMachine"
            )

    def __enter__(self) -> VirtMachine:
        self._require_unused("enter a 'with' block")
        if self.run_state is RunState.PRELAUNCH:
            self.realize()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _require_running(self, what: str) -> None:
        if self.run_state not in (RunState.RUNNING, RunState.PAUSED):
            raise StateError(f"cannot {what}: machine is {self.run_state.value}")

    def stop(self) -> None:
        """Pause every vCPU (QMP ``stop``)."""
        with self._lock:
            self._require_running("stop")
            if self.run_state is RunState.RUNNING:
                self.calls.pause()
                self.run_state = RunState.PAUSED
                self.events.emit(ev.STOP)

    def cont(self) -> None:
        """Resume after :meth:`stop` (QMP ``cont``)."""
        with self._lock:
            self._require_running("cont")
            if self.run_state is RunState.PAUSED:
                self.calls.resume()
                self.run_state = RunState.RUNNING
                self.events.emit(ev.RESUME)

    def system_powerdown(self) -> None:
        """Ask the guest to power down (GED power-button event)."""
        with self._lock:
            self._require_running("power down")
            self.ged.signal(GED_EVENT_POWER_DOWN)

    # -- hotplug ---------------------------------------------------------------------------

    def device_add(self, driver: str, id: str | None = None, **props: Any) -> Vcpu:
        """Plug a CPU: ``device_add <driver>,id=<id>,core-id=N``.

        Validates everything first (driver, id, slot, policy), then unparks or
        creates the backend vCPU, realizes it powered off, wires its GIC
        interface, sets ``_STA.Enabled`` with an insert event and raises the
        GED CPU hotplug interrupt. The guest then onlines it with ``CPU_ON``.
        """
        with self._lock:
            self._require_running("device_add")
            self._check_driver(driver)
            device_id = self._check_new_id(id)
            unknown = sorted(set(props) - set(_CPU_PROPS))
            if unknown:
                raise DeviceError(
                    f"Property '{driver}.{unknown[0]}' not found; CPU properties are "
                    f"{', '.join(_CPU_PROPS)}"
                )
            slot = self.topology.find_slot(props)
            vcpu = self.vcpus[slot.index]
            if vcpu.enabled:
                owner = vcpu.device_id or vcpu.qom_path
                raise DeviceError(
                    f"CPU slot {_describe(slot.props())} is already plugged (by {owner!r})"
                )
            reason = self.ask("vcpuhp_device_add_allowed", slot=slot, driver=driver,
                               device_id=device_id)
            if reason is not None:
                raise PolicyRefused(f"device_add refused by policy: {reason}")
            handle = self._take_backend_vcpu(vcpu)
            try:
                self._realize(vcpu, handle)
            except BaseException:
                with contextlib.suppress(VcpuhpError):
                    self._return_backend_vcpu(handle)
                raise
            vcpu.device_id = device_id
            vcpu.insert_pending = True
            vcpu.ost_event = vcpu.ost_status = 0
            self.ged.signal(GED_EVENT_CPU_HOTPLUG)
            self.events.emit(ev.CPU_PLUGGED, device=device_id, path=vcpu.qom_path,
                             cpu_index=slot.index, arch_id=slot.arch_id)
            self.notify("vcpuhp_cpu_plugged", vcpu=vcpu)
            return vcpu

    def _check_driver(self, driver: str) -> None:
        valid = [cpu_qom_type(model) for model in CPU_MODELS]
        if driver not in valid:
            raise DeviceError(
                f"'{driver}' is not a valid CPU device model name; valid: {', '.join(valid)}"
            )
        if driver != self.config.cpu_type:
            raise DeviceError(
                f"CPU type '{driver}' does not match this machine's CPUs "
                f"('{self.config.cpu_type}'): a hot-plugged CPU must have the same features"
            )

    def _check_new_id(self, device_id: str | None) -> str:
        if device_id is None or device_id == "":
            raise DeviceError("device_add of a CPU needs an 'id' so it can be removed later")
        if not isinstance(device_id, str) or not _ID_RE.match(device_id):
            raise DeviceError(
                f"Parameter 'id' expects an identifier (a letter, then letters, digits, "
                f"'-', '.', '_'), not {device_id!r}"
            )
        for vcpu in self.vcpus:
            if vcpu.device_id == device_id:
                raise DeviceError(f"Duplicate device ID '{device_id}' for device")
        return device_id

    def _take_backend_vcpu(self, vcpu: Vcpu) -> BackendVcpu:
        if self.backend.capabilities.parks_vcpus:
            return self.parked.unpark(vcpu.slot.arch_id)
        return self.calls.create_vcpu(vcpu.slot)

    def _return_backend_vcpu(self, handle: BackendVcpu) -> None:
        if self.backend.capabilities.parks_vcpus:
            self.parked.park(handle)
        else:
            self.calls.destroy_vcpu(handle)

    def find_device(self, device_id: str) -> Vcpu:
        """The CPU whose ``id`` (or QOM path) is ``device_id``."""
        for vcpu in self.vcpus:
            if vcpu.enabled and device_id in (vcpu.device_id, vcpu.qom_path):
                return vcpu
        raise DeviceNotFound(f"Device '{device_id}' not found")

    def device_del(self, id: str, *, timeout: float | None = None) -> Vcpu:
        """Request removal of a plugged CPU (QMP ``device_del``).

        Only *requests*: sets the remove event and raises the GED interrupt.
        Completion is the ``DEVICE_DELETED`` event after the guest has taken
        the CPU offline and ejected it. Asking again while a request is
        pending asks the guest again (as QEMU does for ACPI CPU hotplug).

        :param timeout: seconds the guest gets to eject the CPU; then the
            request is withdrawn as by :meth:`cancel_unplug`. ``None`` means
            :attr:`MachineConfig.unplug_timeout` (by default none: wait
            forever, as QEMU); ``math.inf`` waits forever whatever the config.
        """
        if timeout is not None and not timeout > 0:
            raise DeviceError(f"device_del timeout must be a positive number of seconds, "
                              f"not {timeout!r}")
        with self._lock:
            self._require_running("device_del")
            vcpu = self.find_device(id)
            if vcpu.slot.index == 0:
                raise PolicyRefused("CPU 0 is the boot CPU and can never be unplugged")
            if vcpu.cold_booted and not self.config.allow_cold_unplug:
                raise PolicyRefused(
                    f"CPU {vcpu.slot.index} ({id}) was enabled at boot; unplugging cold-booted "
                    "CPUs is disabled (policy allow_cold_unplug)"
                )
            reason = self.ask("vcpuhp_device_del_allowed", vcpu=vcpu)
            if reason is not None:
                raise PolicyRefused(f"device_del refused by policy: {reason}")
            vcpu.remove_pending = vcpu.unplug_requested = True
            self._unplug_requests += 1
            self._unplug_request_of[vcpu.slot.index] = self._unplug_requests
            wait = self.config.unplug_timeout if timeout is None else timeout
            if wait is not None and math.isfinite(wait):
                self.unplug_watchdog.arm(vcpu.slot.index, self._unplug_requests, wait)
            else:
                self.unplug_watchdog.disarm(vcpu.slot.index)
            self.ged.signal(GED_EVENT_CPU_HOTPLUG)
            self.events.emit(ev.CPU_UNPLUG_REQUESTED, device=vcpu.device_id,
                             path=vcpu.qom_path, cpu_index=vcpu.slot.index)
            return vcpu

    def cancel_unplug(self, id: str) -> Vcpu:
        """Withdraw a pending ``device_del`` the guest has not answered.

        The remove event is cleared (a later guest scan does not see it),
        ``DEVICE_UNPLUG_GUEST_ERROR`` is emitted, and the CPU stays plugged,
        enabled and known by its id. What the guest already did stays done: a
        CPU it took offline stays offline until it calls ``CPU_ON`` again.
        :class:`DeviceError` when no unplug of ``id`` is pending.
        """
        with self._lock:
            self._require_running("cancel an unplug")
            vcpu = self.find_device(id)
            if not vcpu.unplug_requested:
                raise DeviceError(f"Device {id} has no unplug pending; nothing to cancel")
            self._withdraw_unplug(vcpu)
            return vcpu

    def _withdraw_unplug(self, vcpu: Vcpu) -> None:
        vcpu.remove_pending = vcpu.fw_remove = vcpu.unplug_requested = False
        self._unplug_request_of.pop(vcpu.slot.index, None)
        self.unplug_watchdog.disarm(vcpu.slot.index)
        self.events.emit(ev.DEVICE_UNPLUG_GUEST_ERROR, device=vcpu.device_id,
                         path=vcpu.qom_path)

    def _unplug_timed_out(self, index: int, request: int) -> None:
        """The watchdog: the guest did not eject in time (a later request supersedes)."""
        with self._lock:
            vcpu = self.vcpus[index]
            if (self._released or not vcpu.unplug_requested
                    or self._unplug_request_of.get(index) != request):
                return
            _log.warning("CPU %d (%s) was not ejected in time; unplug request withdrawn",
                         index, vcpu.device_id)
            self._withdraw_unplug(vcpu)

    # -- HotplugController: called by the register block -----------------------------------

    def eject(self, index: int) -> None:
        """The guest ejected CPU ``index`` (``_EJ0``): disable, unrealize, park.

        Refused (raising, nothing changed) when the CPU is not enabled, still
        running, or a cold-booted CPU the policy keeps.
        """
        with self._lock:
            vcpu = self.vcpus[index]
            if self.run_state is RunState.SHUTDOWN:
                raise StateError("machine is shut down")
            if index == 0:
                raise PolicyRefused("CPU 0 is the boot CPU and can never be ejected")
            if not vcpu.enabled:
                raise StateError(f"CPU {index} is not plugged")
            if vcpu.cold_booted and not self.config.allow_cold_unplug:
                raise PolicyRefused(f"CPU {index} was enabled at boot and cannot be ejected")
            if vcpu.state is not VcpuState.POWERED_OFF:
                raise StateError(
                    f"CPU {index} is {vcpu.state.value}; the guest must CPU_OFF it before eject"
                )
            handle = vcpu.handle
            assert handle is not None
            self.calls.unrealize_vcpu(handle)
            handle.realized = False
            try:
                self._return_backend_vcpu(handle)
            except BackendCallError:
                self._rerealize(handle)  # destroy_vcpu failed: leave the CPU plugged, as it was
                raise
            self.irqchip.set_accessible(index, False)
            vcpu.advance("eject")
            vcpu.handle = None
            device_id, path = vcpu.device_id, vcpu.qom_path
            vcpu.device_id = None
            vcpu.insert_pending = vcpu.remove_pending = vcpu.fw_remove = False
            vcpu.unplug_requested = False
            self._unplug_request_of.pop(index, None)
            self.unplug_watchdog.disarm(index)
            self.events.emit(ev.DEVICE_DELETED, device=device_id, path=path, cpu_index=index)
            self.notify("vcpuhp_cpu_unplugged", vcpu=vcpu, device_id=device_id)

    def _rerealize(self, handle: BackendVcpu) -> None:
        """Undo an unrealize whose eject could not finish; if even that fails, the
        CPU stays plugged with an unrealized vCPU and the error is logged."""
        try:
            self.calls.realize_vcpu(handle)
        except VcpuhpError:
            _log.exception("could not undo the unrealize of CPU %d", handle.slot.index)
        else:
            handle.realized = True

    def ost(self, index: int, event: int, status: int) -> None:
        """The guest's ``_OST`` report for CPU ``index``."""
        vcpu = self.vcpus[index]
        info = {
            "device": vcpu.device_id,
            "slot": str(index),
            "slot-type": "CPU",
            "source": event,
            "status": status,
        }
        self.events.emit(ev.ACPI_DEVICE_OST, info=info)
        self.notify("vcpuhp_acpi_ost", vcpu=vcpu, event=event, status=status)
        if (event == OST_EVENT_EJECT_REQUEST and vcpu.unplug_requested
                and status not in (OST_STATUS_SUCCESS, OST_STATUS_EJECT_IN_PROGRESS)):
            vcpu.unplug_requested = False
            self._unplug_request_of.pop(index, None)
            self.unplug_watchdog.disarm(index)
            self.events.emit(ev.DEVICE_UNPLUG_GUEST_ERROR, device=vcpu.device_id,
                             path=vcpu.qom_path)

    def guest_error(self, message: str) -> None:
        """Record something invalid the guest did (nothing was changed)."""
        self._guest_error(message)

    def _guest_error(self, message: str) -> None:
        _log.warning("guest error: %s", message)
        self.events.emit(ev.GUEST_ERROR, message=message)

    # -- PSCI: the firmware (vcpuhp.psci_firmware) ------------------------------------------

    def psci_call(self, caller: int, function_id: int, *args: int) -> int:
        """Handle a PSCI call made by CPU ``caller``; returns the signed x0 value.

        Raises :class:`GuestError` only when the caller itself cannot make
        calls (unknown or not running); every bad argument is a PSCI return code.
        """
        with self._lock:
            return self.firmware.call(caller, function_id, *args)

    def vcpu_started(self, index: int) -> None:
        """Backends call this when a powered-on vCPU begins executing."""
        with self._lock:
            vcpu = self.vcpus[index]
            if vcpu.state is not VcpuState.ON_PENDING:
                return
            vcpu.advance("started")
            self.events.emit(ev.CPU_POWERED_ON, cpu_index=index, device=vcpu.device_id)
            self.notify("vcpuhp_cpu_powered_on", vcpu=vcpu)

    def guest_system_off(self) -> None:
        """PSCI ``SYSTEM_OFF``: every CPU stops and the machine is ``shutdown`` (the
        owner still calls :meth:`shutdown` to release the backend and RAM)."""
        with self._lock:
            self.run_state = RunState.SHUTDOWN
            self.events.emit(ev.SHUTDOWN, guest=True, reason="guest-shutdown")
            for vcpu in self.vcpus:
                if vcpu.handle is not None and vcpu.state in (VcpuState.ONLINE,
                                                              VcpuState.ON_PENDING):
                    self._power_off_reporting(vcpu)

    def guest_system_reset(self) -> None:
        """PSCI ``SYSTEM_RESET``: every enabled CPU powered off, the GIC reset, the
        boot image and tables reloaded, the boot CPU started again."""
        with self._lock:
            for vcpu in self.vcpus:
                if vcpu.state in (VcpuState.ONLINE, VcpuState.ON_PENDING):
                    self._power_off_reporting(vcpu)
                if vcpu.enabled:
                    vcpu.advance("reset")
            self.irqchip.reset()
            if self.backend.capabilities.executes_guest_code:
                self._load_boot_image()  # a reset guest starts from pristine tables and image
            self.events.emit(ev.RESET, guest=True, reason="guest-reset")
            self._start_boot_cpu()

    def _power_off_reporting(self, vcpu: Vcpu) -> None:
        """Power ``vcpu`` off for a system event that cannot be refused (reset, power
        off): a backend that fails is reported with a ``VCPU_FAULT`` event."""
        try:
            self.calls.power_off(vcpu.handle)
        except VcpuhpError as exc:
            _log.error("%s", exc)
            self.events.emit(ev.VCPU_FAULT, cpu_index=vcpu.slot.index, message=str(exc))

    # -- guest accesses (executing backends and the null test driver) --------------------------

    def mmio_read(self, addr: int, size: int, cpu: int | None = None) -> int:
        """A guest read of ``size`` (1, 2, 4, 8) bytes at guest-physical ``addr``.

        The result always fits in ``size`` bytes: a narrower read of a wider
        register gives its low bytes (a device model answering with the whole
        register would otherwise leak bits into the guest's destination).
        """
        check_access(addr, size)
        mask = (1 << (8 * size)) - 1
        if self.bus.owned_by_irqchip(addr):
            return self.irqchip.mmio_read(addr, size) & mask
        with self._lock:
            return self.bus.read(addr, size) & mask

    def mmio_write(self, addr: int, size: int, value: int, cpu: int | None = None) -> None:
        """A guest write of ``size`` bytes of ``value`` at guest-physical ``addr``.

        After :meth:`shutdown` no write is taken (:class:`GuestError`).
        """
        check_access(addr, size, value)
        if self.bus.owned_by_irqchip(addr):
            self.irqchip.mmio_write(addr, size, value)
            return
        with self._lock:
            if self.is_shut_down:
                raise GuestError(f"machine is shut down: write of {value:#x} at {addr:#x} "
                                 "not taken")
            self.bus.write(addr, size, value)

    def sysreg_read(self, cpu: int, name: str) -> int:
        """A read of GIC CPU interface register ``name`` by CPU ``cpu`` (userspace GIC)."""
        return self.gic.sysreg_read(cpu, name)

    def sysreg_write(self, cpu: int, name: str, value: int) -> None:
        """A write of GIC CPU interface register ``name`` by CPU ``cpu`` (userspace GIC)."""
        self.gic.sysreg_write(cpu, name, value)

    def _interrupt_signal(self, index: int) -> None:
        vcpu = self.vcpus[index]
        if vcpu.handle is not None and vcpu.handle.realized:
            try:
                self.calls.kick(vcpu.handle)
            except VcpuhpError:
                _log.exception("kick of CPU %d failed", index)
        # INTERRUPT tells a test-driver guest (a backend that executes no guest code) that
        # it has an interrupt to take; an executing backend's guest takes it itself, and an
        # event per timer tick would only keep the event thread busy.
        if not self.backend.capabilities.executes_guest_code and self.gic.irq_pending(index):
            self.events.emit(ev.INTERRUPT, cpu_index=index)

    def console_input(self, data: bytes | str) -> int:
        """Type ``data`` at the guest's console (the PL011's receive side).

        Returns how many bytes were taken; input beyond the UART's bounded
        queue is refused rather than buffered without limit.
        """
        raw = data.encode() if isinstance(data, str) else bytes(data)
        with self._lock:
            self._require_running("type at the console")
            return self.uart.receive(raw)

    def _console_line(self, line: str) -> None:
        self.console.append(line)
        self.events.emit(ev.CONSOLE, line=line)

    def vcpu_fault(self, index: int, error: BaseException) -> None:
        """Backends call this when a vCPU stopped on an error (a bug in a hook, a guest fault)."""
        with self._lock:
            vcpu = self.vcpus[index]
            message = f"CPU {index} stopped: {type(error).__name__}: {error}"
            _log.error("%s", message)
            if vcpu.state in (VcpuState.ONLINE, VcpuState.ON_PENDING):
                vcpu.state = VcpuState.POWERED_OFF
                self.irqchip.reset_cpu_interface(index)
                if vcpu.handle is not None:
                    try:
                        self.calls.power_off(vcpu.handle)
                    except VcpuhpError as exc:
                        message += f"; and powering it off failed: {exc}"
            self.events.emit(ev.VCPU_FAULT, cpu_index=index, message=message)
            self._check_panicked(index, message)

    def _check_panicked(self, index: int, message: str) -> None:
        """No CPU left running after a fault: ``guest-panicked`` and ``GUEST_PANICKED``.

        The action is ``pause`` (QEMU's default): the machine keeps its state for
        inspection; ``vcpuhp run`` decides whether to exit.
        """
        if self.run_state is not RunState.RUNNING:
            return
        if any(v.state in (VcpuState.ONLINE, VcpuState.ON_PENDING) for v in self.vcpus):
            return
        self.run_state = RunState.GUEST_PANICKED
        self.events.emit(ev.GUEST_PANICKED, action="pause",
                         info={"type": "vcpu-fault", "cpu-index": index, "message": message})

    # -- queries ----------------------------------------------------------------------------------

    def vcpu(self, index: int) -> Vcpu:
        """The record of CPU ``index``."""
        if not 0 <= index < len(self.vcpus):
            raise DeviceError(f"CPU index {index} is out of range 0-{len(self.vcpus) - 1}")
        return self.vcpus[index]

    def cpu_masks(self) -> CpuMasks:
        """possible / present / enabled / online, as the guest's sysfs would show them."""
        with self._lock:
            return views.cpu_masks(self.vcpus)

    def query_hotpluggable_cpus(self) -> list[dict[str, Any]]:
        """QMP ``query-hotpluggable-cpus``: every slot, ``qom-path`` only when plugged."""
        with self._lock:
            return views.hotpluggable_cpus(self)

    def query_cpus_fast(self) -> list[dict[str, Any]]:
        """QMP ``query-cpus-fast``: the enabled CPUs."""
        with self._lock:
            return views.cpus_fast(self)

    def query_acpi_ospm_status(self) -> list[dict[str, Any]]:
        """QMP ``query-acpi-ospm-status``: the last ``_OST`` of every CPU slot (as QEMU)."""
        with self._lock:
            return views.acpi_ospm_status(self)

    def query_status(self) -> dict[str, Any]:
        """QMP ``query-status``."""
        return {"running": self.run_state is RunState.RUNNING,
                "status": self.run_state.value}

    def backend_stats(self) -> dict[str, Any]:
        """The backend's resource counts plus the parked-vCPU count."""
        with self._lock:
            return {"parked": len(self.parked), **self.calls.stats()}

    def snapshot(self) -> dict[str, Any]:
        """All machine state, for exact before/after comparisons."""
        with self._lock:
            return {
                "run_state": self.run_state.value,
                "vcpus": [v.state_dict() for v in self.vcpus],
                "handles": [id(v.handle) if v.handle is not None else None for v in self.vcpus],
                "parked": {a: id(h) for a, h in self.parked.handles().items()},
                "gic": self.irqchip.state(),
                "ged": self.ged.state(),
                "cpu_hotplug": self.cpu_hotplug.state(),
            }

    def snapshot_bytes(self) -> bytes:
        """:meth:`snapshot` serialised canonically, to compare byte for byte."""
        return json.dumps(self.snapshot(), sort_keys=True).encode()

    def check_invariants(self) -> None:
        """Raise :class:`AssertionError` if a life-cycle invariant does not hold."""
        with self._lock:
            realized = {v.slot.arch_id for v in self.vcpus if v.handle is not None}
            for v in self.vcpus:
                assert (v.handle is not None) == v.enabled, f"CPU {v.slot.index} handle/enabled"
                assert not v.online or v.enabled, f"CPU {v.slot.index} online but not enabled"
                assert self.irqchip.is_accessible(v.slot.index) == v.enabled, \
                    f"CPU {v.slot.index} GIC wiring != enabled"
            if self.backend.capabilities.parks_vcpus and self.run_state in (RunState.RUNNING,
                                                                            RunState.PAUSED):
                parked = set(self.parked)
                possible = {s.arch_id for s in self.topology.slots}
                assert parked == possible - realized, "parked != possible - realized"
                handles = [*self.parked.handles().values(),
                           *(v.handle for v in self.vcpus if v.handle is not None)]
                assert len({id(h) for h in handles}) == len(handles), "a handle appears twice"


def _describe(props: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in props.items())


__all__ = ["RunState", "VirtMachine"]
