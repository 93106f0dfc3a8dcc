"""The ``tcg-unicorn`` accelerator: Unicorn engines, one per vCPU, each on its own thread.

Life cycle (the contract in :mod:`vcpuhp.backend`)::

    create_vcpu     a Unicorn engine: RAM and MMIO mapped, hooks installed
    realize_vcpu    its host thread starts, registers a translation context,
                    waits powered off
    power_on        registers reset, PC = entry, x0.. = args; the thread runs it
    power_off       the engine stops; the thread waits again
    unrealize_vcpu  the thread exits (unregistering its context) and is joined
    destroy_vcpu    the engine is closed (uc_close), or kept as a spare

The backend does not park vCPUs (``parks_vcpus=False``): unlike a KVM vCPU, a
Unicorn engine can be freed, and keeping one per *possible* CPU would keep its
translation buffer and CPU state for CPUs that may never be plugged. It keeps
:data:`SPARE_ENGINES` engine ready for the next plug (``stats()``:
``spare_engines``): one made at realize when the machine has hot-pluggable
slots, afterwards the last unplugged vCPU's, translation cache flushed; it
closes the others. What must not leak across plug cycles is the per-thread translation
context, which the :class:`~vcpuhp_tcg_unicorn.pool.TranslationContextPool`
accounts for, bounded by ``maxcpus``.

Options (``--accel tcg-unicorn,tb-size=64,stops=slices,slice-insns=50000``):

``tb-size=N``
    MiB of translation buffer per engine (default 32), passed to Unicorn as
    ``UC_CTL_TCG_BUFFER_SIZE`` before the engine initialises.
``stops=block|slices``
    how a running vCPU is stopped: ``block`` (default) stops it from any
    thread at the next translation-block boundary and runs it without an
    instruction budget (see :mod:`~vcpuhp_tcg_unicorn.stops`; falls back to
    ``slices`` when this Unicorn build does not allow it); ``slices`` runs
    bounded instruction-count slices (exact too, about 5x slower).
``slice-insns=N``
    with ``stops=slices``: guest instructions per slice (default 100000).

Machine-wide services: one :class:`~vcpuhp_tcg_unicorn.timer.TimerService`
thread fires every vCPU's generic-timer deadlines, one
:class:`~vcpuhp_tcg_unicorn.stops.StopRetrier` repeats stops that raced with
the start of a run. Both sleep without a timeout when they have nothing to do.
"""

from __future__ import annotations

import atexit
import logging
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from vcpuhp import memmap
from vcpuhp.backend import AcceleratorBackend, BackendCapabilities, BackendVcpu, Viability
from vcpuhp.errors import BackendError, ConfigError
from vcpuhp.topology import CpuSlot
from vcpuhp.vcpu_thread import pause_vcpus, resume_vcpus
from vcpuhp_tcg_unicorn import binding
from vcpuhp_tcg_unicorn.coherence import CoherenceDomain
from vcpuhp_tcg_unicorn.engine import CPU_MODELS, Engine, RamMapping, UnboundExits
from vcpuhp_tcg_unicorn.execution import ExecutionToken
from vcpuhp_tcg_unicorn.pool import TranslationContextPool
from vcpuhp_tcg_unicorn.stops import StopRetrier
from vcpuhp_tcg_unicorn.timer import TimerService
from vcpuhp_tcg_unicorn.vcpu import DEFAULT_SLICE, UnicornVcpu

if TYPE_CHECKING:
    from vcpuhp.machine import VirtMachine

_log = logging.getLogger(__name__)
_open_backends: weakref.WeakSet[UnicornBackend] = weakref.WeakSet()


@atexit.register
def _close_open_backends() -> None:
    """Stop every vCPU thread before the interpreter frees guest RAM under a running engine.

    vCPU threads are daemon threads so a forgotten ``shutdown()`` cannot hang
    interpreter exit; this handler makes such an exit orderly instead of a crash.
    """
    for backend in list(_open_backends):
        try:
            backend.close()
        except Exception:
            _log.exception("tcg-unicorn: closing a backend at exit failed")

UNICORN_VERSION: Final = "2.1.4"
DEFAULT_TB_SIZE_MIB: Final = 32
MAX_TB_SIZE_MIB: Final = 4095
"""Unicorn takes the size as a 32-bit byte count."""
MAX_SLICE: Final = 1 << 30
OPTIONS: Final = ("tb-size", "stops", "slice-insns", "exec")
STOP_MODES: Final = ("block", "slices")
EXEC_MODES: Final = ("parallel", "serial")
"""``parallel`` (the default): every engine executes at once; ``serial``: one at a time, so
that guest atomics are atomic across engines (see :mod:`~vcpuhp_tcg_unicorn.execution`)."""
PAUSE_TIMEOUT: Final = 2.0
MMIO_PAGE: Final = 0x1000
"""MMIO mappings are rounded up to this (Unicorn maps whole target pages)."""
SPARE_ENGINES: Final = 1
"""Engines kept ready for the next plug (one made at realize when a slot is hot-pluggable,
then the last unplugged one, translation cache flushed): creating one costs ~0.5 ms under
the machine lock on the plug path, closing one ~0.4 ms on eject."""
SERVICE_THREADS: Final = 2
"""Threads of an attached backend besides the vCPUs': the timer service, the stop retrier."""


def _whole_number(options: Mapping[str, str], key: str, default: int, low: int, high: int,
                  unit: str) -> int:
    text = options.get(key, str(default))
    try:
        value = int(text, 10)
    except ValueError:
        raise ConfigError(f"tcg-unicorn: {key}={text!r} is not a whole number of {unit}") from None
    if not low <= value <= high:
        raise ConfigError(f"tcg-unicorn: {key}={value} is out of range {low}-{high} ({unit})")
    return value


def parse_options(options: Mapping[str, str]) -> tuple[int, int, bool]:
    """``(tb-size in bytes, slice-insns, block-boundary stops wanted)`` from the options."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(
            f"tcg-unicorn: unknown option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}"
        )
    tb_mib = _whole_number(options, "tb-size", DEFAULT_TB_SIZE_MIB, 1, MAX_TB_SIZE_MIB, "MiB")
    slice_insns = _whole_number(options, "slice-insns", DEFAULT_SLICE, 1, MAX_SLICE,
                                "instructions")
    stops = options.get("stops", STOP_MODES[0])
    if stops not in STOP_MODES:
        raise ConfigError(f"tcg-unicorn: stops={stops!r} is not a stop mode; valid: "
                          f"{', '.join(STOP_MODES)}")
    return tb_mib * memmap.MiB, slice_insns, stops == "block"


def parse_exec_mode(options: Mapping[str, str]) -> bool:
    """Whether engines execute one at a time (``exec=serial``; the default is ``parallel``)."""
    mode = options.get("exec", EXEC_MODES[0])
    if mode not in EXEC_MODES:
        raise ConfigError(f"tcg-unicorn: exec={mode!r} is not an execution mode; valid: "
                          f"{', '.join(EXEC_MODES)}")
    return mode == "serial"


def machine_mmio_regions(machine: VirtMachine) -> list[tuple[int, int]]:
    """``(base, size)`` of every MMIO region an engine maps for ``machine``.

    The distributor, each redistributor region that holds this machine's
    redistributors, the UART, the GED and the CPU hotplug block.
    """
    regions = [(memmap.GICD.base, memmap.GICD.size)]
    regions += [(r.base, r.size) for r in machine.gic.regions]
    for region in (memmap.UART, memmap.ACPI_GED, memmap.CPU_HOTPLUG):
        regions.append((region.base, -(-region.size // MMIO_PAGE) * MMIO_PAGE))
    return regions


class UnicornBackend(AcceleratorBackend):
    """Executes the guest with Unicorn: one engine and one host thread per realized vCPU."""

    name = "tcg-unicorn"
    distribution = "vcpuhp-tcg-unicorn"
    capabilities = BackendCapabilities(executes_guest_code=True, parks_vcpus=False)

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        self.tb_size, self.slice_instructions, self.block_stops = parse_options(self.options)
        self.timers = TimerService()
        self.retrier = StopRetrier()
        self.coherence = CoherenceDomain()
        self.token = ExecutionToken(serial=parse_exec_mode(self.options))
        self.vcpus: dict[int, UnicornVcpu] = {}
        self.pool: TranslationContextPool | None = None
        self._ram: RamMapping | None = None
        self._mmio: list[tuple[int, int]] = []
        self.paused = False
        self.total_engines_created = 0
        self.total_engines_reused = 0
        self._spares: list[Engine] = []
        self._closing = False
        self.total_engines_closed = 0
        self.total_threads_started = 0
        self.total_threads_joined = 0
        self._retired_irqs = 0
        self._retired_faults = 0
        self._retired_exceptions = 0
        self._retired_stops = 0
        self._retired_maintenance = 0

    @classmethod
    def viability(cls) -> Viability:
        """Viable when the ``unicorn`` module imports and supports AArch64."""
        if binding.IMPORT_ERROR is not None:
            return Viability.no(
                f"the unicorn module cannot be imported ({binding.IMPORT_ERROR}); "
                f"pip install unicorn=={UNICORN_VERSION}"
            )
        unicorn = binding.unicorn
        if not unicorn.uc_arch_supported(unicorn.UC_ARCH_ARM64):
            return Viability.no("this unicorn build has no ARM64 support")
        major, minor, _ = unicorn.uc_version()
        if (major, minor) < (2, 1):
            return Viability.no(
                f"unicorn {major}.{minor} is too old (needs >= 2.1 for the TB size control); "
                f"pip install unicorn=={UNICORN_VERSION}"
            )
        return Viability.ok()

    # -- contract ---------------------------------------------------------------------------

    def attach(self, machine: VirtMachine) -> None:
        """Check the CPU model and size the translation-context pool by maxcpus."""
        model = machine.config.cpu_model
        if model not in CPU_MODELS:
            raise ConfigError(
                f"tcg-unicorn: CPU model {model!r} needs KVM; under TCG use one of "
                f"{', '.join(CPU_MODELS)}"
            )
        if machine.memory is None:
            raise BackendError("tcg-unicorn: attach before the machine has RAM")
        super().attach(machine)
        memory = machine.memory
        self._ram = RamMapping(memory.base, memory.size, memory.host_address)
        self._mmio = machine_mmio_regions(machine)
        self.pool = TranslationContextPool(machine.topology.smp.maxcpus)
        self.timers.start()
        self.retrier.start()
        _open_backends.add(self)

    def vcpus_created(self) -> None:
        """Prepare the spare engine the next plug takes, if the machine has slots to plug."""
        machine, _ = self._require_machine()
        smp = machine.topology.smp
        if smp.maxcpus > smp.cpus and len(self._spares) < SPARE_ENGINES:
            assert self._ram is not None
            self._spares.append(Engine(cpu_model=machine.config.cpu_model, tb_size=self.tb_size,
                                       ram=self._ram, mmio=self._mmio, mpidr=0,
                                       exits=UnboundExits(), block_boundary_stops=self.block_stops))
            self.total_engines_created += 1

    def _require_machine(self) -> tuple[VirtMachine, TranslationContextPool]:
        if self.machine is None or self.pool is None:
            raise BackendError("tcg-unicorn: the backend is not attached to a machine")
        return self.machine, self.pool

    def create_vcpu(self, slot: CpuSlot) -> UnicornVcpu:
        """An engine for ``slot`` (a spare one if there is one; no thread yet)."""
        machine, pool = self._require_machine()
        if slot.index in self.vcpus:
            raise BackendError(f"tcg-unicorn: CPU {slot.index} already has an engine")
        assert self._ram is not None
        spare = self._spares.pop() if self._spares else None
        try:
            vcpu = UnicornVcpu(slot, machine=machine, pool=pool,
                               cpu_model=machine.config.cpu_model, tb_size=self.tb_size,
                               ram=self._ram, mmio=self._mmio,
                               timers=self.timers, retrier=self.retrier,
                               slice_instructions=self.slice_instructions,
                               async_stops=self.block_stops, spare=spare,
                               coherence=self.coherence, token=self.token)
        except BaseException:
            if spare is not None:
                self._spares.append(spare)
            raise
        self.vcpus[slot.index] = vcpu
        self.coherence.join(vcpu.engine.maintenance, vcpu.stop_running)
        if spare is None:
            self.total_engines_created += 1
        else:
            self.total_engines_reused += 1
        return vcpu

    def _own(self, vcpu: BackendVcpu) -> UnicornVcpu:
        if not isinstance(vcpu, UnicornVcpu) or self.vcpus.get(vcpu.slot.index) is not vcpu:
            raise BackendError(f"tcg-unicorn: {vcpu!r} is not a vCPU of this backend")
        return vcpu

    def realize_vcpu(self, vcpu: BackendVcpu) -> None:
        """Start the vCPU's host thread (powered off; it registers a translation context)."""
        own = self._own(vcpu)
        own.start_thread(paused=self.paused)
        self.total_threads_started += 1

    def unrealize_vcpu(self, vcpu: BackendVcpu) -> None:
        """Make the thread exit and join it; its translation context is unregistered."""
        own = self._own(vcpu)
        if own.thread is not None:
            own.stop_thread()
            self.total_threads_joined += 1

    def destroy_vcpu(self, vcpu: BackendVcpu) -> None:
        """Close the engine of an unrealized vCPU, or keep it as a spare for the next plug."""
        own = self._own(vcpu)
        if own.thread is not None:
            raise BackendError(f"tcg-unicorn: CPU {own.index} still has a thread; unrealize first")
        self.coherence.leave(own.engine.maintenance)
        if len(self._spares) < SPARE_ENGINES and not self._closing:
            own.engine.forget_translations()  # another engine may have changed that code
            own.engine.rebind(mpidr=0, exits=UnboundExits())
            self._spares.append(own.engine)  # for the next plug
        else:
            own.engine.close()
            self.total_engines_closed += 1
        self._retired_irqs += own.irqs_taken
        self._retired_faults += own.faults
        self._retired_exceptions += own.exceptions_taken
        self._retired_stops += own.stops_requested
        self._retired_maintenance += own.maintenance_done
        del self.vcpus[own.index]

    def power_on(self, vcpu: BackendVcpu, entry_point: int, args: Sequence[int]) -> None:
        """Start the vCPU at ``entry_point`` with ``args`` in x0..; non-blocking."""
        self._own(vcpu).power_on(entry_point, args)

    def power_off(self, vcpu: BackendVcpu) -> None:
        """Stop executing the vCPU (never waits for it)."""
        self._own(vcpu).power_off()

    def kick(self, vcpu: BackendVcpu) -> None:
        """Wake the vCPU from ``wfi``; a running one stops to look at its IRQ line."""
        own = self.vcpus.get(vcpu.slot.index)
        if own is vcpu:
            own.kick()

    def pause(self) -> None:
        """Hold every vCPU; waits until none executes guest code."""
        self.paused = True
        self.timers.hold(True)
        pause_vcpus(list(self.vcpus.values()), PAUSE_TIMEOUT)

    def resume(self) -> None:
        """Let every vCPU run again."""
        self.paused = False
        self.timers.hold(False)
        resume_vcpus(list(self.vcpus.values()))

    def stats(self) -> dict[str, Any]:
        """Live engines and threads, the translation-context pool, cumulative totals."""
        vcpus = list(self.vcpus.values())
        pool = self.pool.stats() if self.pool is not None else {}
        return {
            "engines": self.total_engines_created - self.total_engines_closed - len(self._spares),
            "spare_engines": len(self._spares),
            "threads": sum(1 for v in vcpus if v.thread_alive),
            **pool,
            "tb_size_mib": self.tb_size // memmap.MiB,
            "stops": "block" if all(v.slice_instructions == 0 for v in vcpus)
            and self.block_stops else "slices",
            "slice_insns": self.slice_instructions,
            "total_engines_created": self.total_engines_created,
            "total_engines_closed": self.total_engines_closed,
            "total_engines_reused": self.total_engines_reused,
            "total_threads_started": self.total_threads_started,
            "total_threads_joined": self.total_threads_joined,
            "total_irqs_delivered": self._retired_irqs + sum(v.irqs_taken for v in vcpus),
            "total_faults": self._retired_faults + sum(v.faults for v in vcpus),
            "total_exceptions_delivered": self._retired_exceptions
            + sum(v.exceptions_taken for v in vcpus),
            "total_stops_requested": self._retired_stops + sum(v.stops_requested for v in vcpus),
            "total_stop_retries": self.retrier.retries,
            "total_maintenance": self._retired_maintenance
            + sum(v.maintenance_done for v in vcpus),
            "total_maintenance_broadcasts": self.coherence.broadcasts,
            "total_code_flushes_spared": self.coherence.code_flushes_spared,
            "total_execution_handoffs": self.token.handoffs,
            "total_execution_preemptions": self.token.preemptions,
            "total_timer_expiries": self.timers.fired,
        }

    def close(self) -> None:
        """Join every thread and close every engine."""
        _open_backends.discard(self)
        self._closing = True
        errors: list[str] = []
        for vcpu in list(self.vcpus.values()):
            try:
                self.unrealize_vcpu(vcpu)
                vcpu.realized = False
                self.destroy_vcpu(vcpu)
            except BackendError as exc:
                errors.append(str(exc))
        for engine in self._spares:
            engine.close()
            self.total_engines_closed += 1
        self._spares.clear()
        self.timers.close()
        self.retrier.close()
        if errors:
            raise BackendError("tcg-unicorn: close left resources behind: " + "; ".join(errors))
