"""TLB and instruction-cache maintenance that reaches every engine, as the architecture
broadcasts it.

Each engine is a QEMU of its own, with its own TLB (the guest's translations)
and its own cache of translated code. QEMU keeps both right for its one CPU:
its own stores to code it translated discard those blocks, its own ``TLBI``
flushes its TLB. Nothing reaches the other engines, so without this module a
``TLBI VAE1IS`` or an ``IC IVAU`` on CPU 0 leaves CPU 1 with stale
translations of the page tables and the code CPU 0 changed. (Linux 6.12 on
two CPUs: CPU 1 ran ``fpsimd_save_state`` as translated before the boot CPU
patched the kernel's alternatives, and oopsed on a NULL pointer at the first
``fork``.)

The engine sets ``HCR_EL2.TTLB`` and ``HCR_EL2.TPU``, which send every TLB
maintenance instruction and every cache maintenance instruction to the Point
of Unification (``IC IALLUIS``, ``IC IALLU``, ``IC IVAU``, ``DC CVAU``) to
EL2; this machine has no EL2 (the guest sees none), so Unicorn reports them
to the backend as UNDEFINED instructions, and the backend performs them
(:func:`maintenance_for`):

=========================  ===============================================
``TLBI <op>IS``            every engine's TLB is flushed
``TLBI <op>``              this engine's TLB is flushed
``IC IVAU``, ``IC IALLUIS``  every engine's translated code is discarded
``IC IALLU``               this engine's translated code is discarded
``DC CVAU``                nothing to do (the emulation has no data cache)
=========================  ===============================================

Flushing a whole TLB or translation cache where the instruction names one
page or line is allowed (an implementation may invalidate more than asked).
``IC IVAU`` is broadcast like ``IC IALLUIS``: the Arm ARM makes it affect
every PE of the Inner Shareable domain.

Reaching another engine (:meth:`CoherenceDomain.broadcast`): the work is
posted to its :class:`MaintenanceInbox` and, if it is running guest code,
its run is stopped at the next translation-block boundary (an exact stop);
the engine applies the work before it runs again. An engine that sleeps in
``wfi`` is not woken for it: it applies the work before its next run.

The issuer's own translated code is discarded only if another engine may
have written code since the issuer last discarded it: QEMU already drops an
engine's translations of code that engine itself overwrites, so only stores
by other engines can leave it stale, and an engine that ran no guest code
since (:attr:`MaintenanceInbox.activity`) stored nothing. This keeps a
single CPU patching its kernel (Linux's ftrace rewrites ~50,000 call sites
at boot, each followed by ``IC IVAU``) from retranslating everything after
every patch, while a CPU whose code another CPU rewrote still drops it.

Ordering: the issuing CPU executes nothing while it posts (the instruction
is emulated in the exception hook, between blocks; the issuer does its own
share there and goes on in the same run) and the stop of every other running engine is
requested before it runs on; a stop lands at the next block boundary, and
``ISB`` ends a block, so another CPU executes no block that depends on what
the issuer does after the maintenance until it applied it -- as ``DSB ISH``
then ``ISB`` guarantee -- except in one case: a stop that lands while a run
is starting can be lost (Unicorn clears it) and is repeated by the stop
retrier, 0.5 ms later at most.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from typing import Final

from vcpuhp_tcg_unicorn.decode import SystemInstruction


class Maintenance(enum.Flag):
    """What an engine must discard before it runs again."""

    NONE = 0
    TLB = enum.auto()
    """Every cached translation of the guest's page tables."""
    CODE = enum.auto()
    """Every translated block."""


_TLBI_EL1_OPS: Final = frozenset({0, 1, 2, 3, 5, 7})
"""``op2`` of the EL1&0 ``TLBI`` instructions Unicorn implements (VMALLE1, VAE1, ASIDE1,
VAAE1, VALE1, VAALE1), with ``CRm`` 3 (Inner Shareable) or 7 (this PE)."""
_TLBI_INNER_SHAREABLE: Final = 3
_TLBI_LOCAL: Final = 7
IC_IALLUIS: Final = (0, 7, 1, 0)
IC_IALLU: Final = (0, 7, 5, 0)
IC_IVAU: Final = (3, 7, 5, 1)
DC_CVAU: Final = (3, 7, 11, 1)
_EL0_WITH_UCI: Final = frozenset({IC_IVAU, DC_CVAU})
"""The two of them EL0 may execute, when ``SCTLR_EL1.UCI`` is set."""


def maintenance_for(instruction: SystemInstruction, *, el0: bool,
                    uci: bool) -> tuple[Maintenance, bool] | None:
    """``(what to discard, whether every engine must)`` for a trapped ``SYS`` instruction.

    ``None`` when ``instruction`` is not one the traps send here, or when it is
    UNDEFINED where it was executed (EL0, except ``IC IVAU`` / ``DC CVAU`` with
    ``SCTLR_EL1.UCI``).
    """
    encoding = instruction.encoding
    if el0 and not (uci and encoding in _EL0_WITH_UCI):
        return None
    op1, crn, crm, op2 = encoding
    if op1 == 0 and crn == 8 and op2 in _TLBI_EL1_OPS:
        if crm == _TLBI_INNER_SHAREABLE:
            return Maintenance.TLB, True
        if crm == _TLBI_LOCAL:
            return Maintenance.TLB, False
        return None
    if encoding in (IC_IVAU, IC_IALLUIS):
        return Maintenance.CODE, True
    if encoding == IC_IALLU:
        return Maintenance.CODE, False
    if encoding == DC_CVAU:
        return Maintenance.NONE, False
    return None


class MaintenanceInbox:
    """One engine's pending maintenance: posted by any thread, taken by its own before a run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = Maintenance.NONE
        self.applied = 0
        """How many times the engine applied work (``TLB`` and ``CODE`` together count one)."""
        self.activity = 0
        """Bumped by the engine's own thread as a run starts and as it ends: odd while the
        engine executes guest code; unchanged and even, it executed nothing meanwhile."""
        self.others_seen: dict[MaintenanceInbox, int] = {}
        """Every other member's :attr:`activity` when this engine's code was last marked
        for discarding (see :meth:`CoherenceDomain.broadcast`)."""

    def begin_run(self) -> None:
        """The engine is about to execute guest code (its own thread)."""
        self.activity += 1

    def end_run(self) -> None:
        """The engine stopped executing guest code (its own thread)."""
        self.activity += 1

    def post(self, work: Maintenance) -> bool:
        """Add ``work``; ``True`` if some of it was not pending yet (the owner needs a kick)."""
        with self._lock:
            new = work & ~self._pending
            self._pending |= work
            return bool(new)

    def take(self) -> Maintenance:
        """Everything pending, now cleared."""
        with self._lock:
            work, self._pending = self._pending, Maintenance.NONE
        if work:
            self.applied += 1
        return work


Kick = Callable[[], None]
"""Ends the owner's current run at a block boundary, if it is running; never blocks."""


class CoherenceDomain:
    """The engines that share the guest's RAM: where broadcast maintenance goes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._members: dict[MaintenanceInbox, Kick] = {}
        self.broadcasts = 0
        self.code_flushes_spared = 0
        """Broadcast ``CODE`` work the issuer did not need for itself (no other engine ran)."""

    def join(self, inbox: MaintenanceInbox, kick: Kick) -> None:
        """An engine that runs for a vCPU joins (``kick`` stops that vCPU's current run)."""
        with self._lock:
            self._members[inbox] = kick

    def leave(self, inbox: MaintenanceInbox) -> None:
        """The engine no longer runs for a vCPU (unplugged or closed)."""
        with self._lock:
            self._members.pop(inbox, None)

    def broadcast(self, source: MaintenanceInbox, work: Maintenance) -> None:
        """Post ``work`` to every member and stop each other one that runs and did not have
        it pending; the issuer gets ``CODE`` only if another engine may have written code
        since it last got it (see the module notes).

        ``source``, the issuer, is not stopped: it is in its exception hook, between
        blocks, and applies its share before it goes on.
        """
        with self._lock:
            others = [(inbox, kick) for inbox, kick in self._members.items()
                      if inbox is not source]
            self.broadcasts += 1
        for inbox, kick in others:
            if inbox.post(work):
                kick()
        own = work
        if work & Maintenance.CODE:
            seen = {inbox: inbox.activity for inbox, _kick in others}
            if any(activity % 2 or source.others_seen.get(inbox) != activity
                   for inbox, activity in seen.items()):
                source.others_seen = seen
            else:
                own &= ~Maintenance.CODE
                self.code_flushes_spared += 1
        if own:
            source.post(own)


__all__ = ["DC_CVAU", "IC_IALLU", "IC_IALLUIS", "IC_IVAU", "CoherenceDomain", "Kick",
           "Maintenance", "MaintenanceInbox", "maintenance_for"]
