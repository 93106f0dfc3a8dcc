"""``VcpuFd``: one KVM vCPU, its shared ``kvm_run`` page, and typed exits from ``KVM_RUN``.

Threads: KVM serialises every vCPU ioctl on the vCPU's own mutex, and
``KVM_RUN`` holds it while the guest runs, so ``KVM_RUN``, ``KVM_GET/SET_ONE_REG``,
``KVM_ARM_VCPU_INIT`` and the MP-state ioctls belong to the thread that runs
the vCPU (called from another thread they block until ``KVM_RUN`` returns; use
them from elsewhere only while the vCPU is not running). :meth:`VcpuFd.kick` is
the one call meant for any thread. :meth:`VcpuFd.close` only after the vCPU's
thread has stopped calling :meth:`VcpuFd.run`.
"""

from __future__ import annotations

import errno
import mmap
import threading
from dataclasses import dataclass
from typing import Any

from vcpuhp_kvm import _syscall, kick, regs, uapi
from vcpuhp_kvm._fd import KvmFd
from vcpuhp_kvm.cdefs import address, ffi, libc, new
from vcpuhp_kvm.errors import KvmClosed, KvmError
from vcpuhp_kvm.exits import Interrupted, VcpuExit, decode

_MAP_FAILED = ffi.cast("void *", -1)


@dataclass(frozen=True)
class VcpuInit:
    """The argument of ``KVM_ARM_VCPU_INIT``: a target and ``KVM_ARM_VCPU_*`` feature bits."""

    target: int
    features: frozenset[int] = frozenset()

    def with_features(self, *bits: int) -> VcpuInit:
        """This init with ``bits`` (``KVM_ARM_VCPU_*`` numbers) added."""
        return VcpuInit(self.target, self.features | frozenset(bits))

    def without_features(self, *bits: int) -> VcpuInit:
        """This init with ``bits`` removed."""
        return VcpuInit(self.target, self.features - frozenset(bits))

    def to_c(self) -> Any:
        """A ``struct kvm_vcpu_init *`` holding this init."""
        words = [0] * 7
        for bit in self.features:
            if not 0 <= bit < 7 * 32:
                raise ValueError(f"vCPU feature bit {bit} is out of range 0-{7 * 32 - 1}")
            words[bit // 32] |= 1 << (bit % 32)
        return new("struct kvm_vcpu_init *", {"target": self.target, "features": words})


class VcpuFd(KvmFd):
    """A vCPU fd from ``KVM_CREATE_VCPU`` with its ``kvm_run`` page mapped.

    Closing it unmaps the page and closes the fd, but KVM keeps the vCPU for
    the VM's lifetime: vCPUs cannot be destroyed, which is why the machine
    parks them instead.
    """

    _kind = "vCPU fd"

    def __init__(self, fd: int, vcpu_id: int, mmap_size: int) -> None:
        super().__init__(fd)
        self.vcpu_id = vcpu_id
        """The id given to ``KVM_CREATE_VCPU`` (the machine's CPU index)."""
        self._mmap_size = mmap_size
        page = libc().mmap(
            ffi.NULL, mmap_size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0
        )
        if page == _MAP_FAILED:
            raise KvmError("mmap of kvm_run", ffi.errno, f"vCPU {vcpu_id}, {mmap_size} bytes")
        self._page = page
        self._run: Any = ffi.cast("struct kvm_run *", page)
        self._runner: int | None = None
        self._runner_lock = threading.Lock()

    def _release(self) -> None:
        with self._runner_lock:  # a concurrent kick() must not write into an unmapped page
            libc().munmap(self._page, self._mmap_size)
            self._run = None

    # --- KVM_ARM_VCPU_INIT --------------------------------------------------------

    def init(self, init: VcpuInit) -> None:
        """``KVM_ARM_VCPU_INIT``: (re)initialise the vCPU: registers to reset values.

        Needed once before the first ``KVM_RUN``; calling it again resets the
        vCPU (how a vCPU is prepared for a new PSCI ``CPU_ON``). Features:
        ``KVM_ARM_VCPU_PSCI_0_2`` needs ``KVM_CAP_ARM_PSCI_0_2``;
        ``KVM_ARM_VCPU_POWER_OFF`` starts it powered off.
        """
        _syscall.ioctl(self.fd, uapi.KVM_ARM_VCPU_INIT, "KVM_ARM_VCPU_INIT", init.to_c(),
                       detail=f"vCPU {self.vcpu_id}, {init}")

    # --- KVM_GET_ONE_REG / KVM_SET_ONE_REG (KVM_CAP_ONE_REG) ---------------------

    def get_one_reg(self, reg_id: int) -> int:
        """``KVM_GET_ONE_REG``: the value of register ``reg_id`` (see :mod:`vcpuhp_kvm.regs`)."""
        box = self._reg_box(reg_id)
        arg = new("struct kvm_one_reg *", {"id": reg_id, "addr": address(box)})
        _syscall.ioctl(self.fd, uapi.KVM_GET_ONE_REG, "KVM_GET_ONE_REG", arg,
                       detail=f"register {reg_id:#x} of vCPU {self.vcpu_id}")
        return int(box[0])

    def set_one_reg(self, reg_id: int, value: int) -> None:
        """``KVM_SET_ONE_REG``: set register ``reg_id`` to ``value``."""
        box = self._reg_box(reg_id)
        size = regs.size_of(reg_id)
        if not 0 <= value < 1 << (8 * size):
            raise ValueError(f"{value:#x} does not fit register {reg_id:#x} ({size} bytes)")
        box[0] = value
        arg = new("struct kvm_one_reg *", {"id": reg_id, "addr": address(box)})
        _syscall.ioctl(self.fd, uapi.KVM_SET_ONE_REG, "KVM_SET_ONE_REG", arg,
                       detail=f"register {reg_id:#x} = {value:#x} on vCPU {self.vcpu_id}")

    @staticmethod
    def _reg_box(reg_id: int) -> Any:
        size = regs.size_of(reg_id)
        if size == 4:
            return new("uint32_t *")
        if size == 8:
            return new("uint64_t *")
        raise ValueError(f"register {reg_id:#x} is {size} bytes: only 4 and 8 are handled")

    def get_reg_list(self) -> list[int]:
        """``KVM_GET_REG_LIST``: every register id this vCPU has (after ``KVM_ARM_VCPU_INIT``)."""
        probe = new("struct kvm_reg_list *")
        result, err = _syscall.ioctl_errno(self.fd, uapi.KVM_GET_REG_LIST, probe)
        if result >= 0:
            return []
        if err != errno.E2BIG:
            raise KvmError("KVM_GET_REG_LIST", err, f"vCPU {self.vcpu_id}")
        count = int(probe.n)
        full = new("struct kvm_reg_list *", {"n": count, "reg": count})
        _syscall.ioctl(self.fd, uapi.KVM_GET_REG_LIST, "KVM_GET_REG_LIST", full,
                       detail=f"vCPU {self.vcpu_id}")
        return [int(full.reg[i]) for i in range(int(full.n))]

    # --- KVM_GET_MP_STATE / KVM_SET_MP_STATE (KVM_CAP_MP_STATE) ------------------

    def get_mp_state(self) -> int:
        """``KVM_GET_MP_STATE``: ``KVM_MP_STATE_RUNNABLE``, ``_STOPPED`` (off) or ``_SUSPENDED``."""
        box = new("struct kvm_mp_state *")
        _syscall.ioctl(self.fd, uapi.KVM_GET_MP_STATE, "KVM_GET_MP_STATE", box,
                       detail=f"vCPU {self.vcpu_id}")
        return int(box.mp_state)

    def set_mp_state(self, state: int) -> None:
        """``KVM_SET_MP_STATE``: power the vCPU on (``RUNNABLE``) or off (``STOPPED``)."""
        box = new("struct kvm_mp_state *", {"mp_state": state})
        _syscall.ioctl(self.fd, uapi.KVM_SET_MP_STATE, "KVM_SET_MP_STATE", box,
                       detail=f"vCPU {self.vcpu_id}, state {state}")

    # --- KVM_GET_VCPU_EVENTS / KVM_SET_VCPU_EVENTS (KVM_CAP_VCPU_EVENTS) ----------

    def inject_external_data_abort(self) -> None:
        """``KVM_SET_VCPU_EVENTS`` with ``ext_dabt_pending``: the guest's last MMIO access aborts.

        Only right after a ``KVM_EXIT_MMIO`` (or ``KVM_EXIT_ARM_NISV``) that user
        space could not serve, as ``api.rst`` says: the vCPU takes a synchronous
        external abort at the faulting instruction (FAR = the address). Needs
        ``KVM_CAP_ARM_INJECT_EXT_DABT``. The MMIO exit is then not completed
        (:meth:`abandon_exit`, which this calls).
        """
        events = new("struct kvm_vcpu_events *")
        _syscall.ioctl(self.fd, uapi.KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", events,
                       detail=f"vCPU {self.vcpu_id}")
        events.exception.ext_dabt_pending = 1
        _syscall.ioctl(self.fd, uapi.KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS", events,
                       detail=f"external data abort for vCPU {self.vcpu_id}")
        self.abandon_exit()

    def abandon_exit(self) -> None:
        """Make the next ``KVM_RUN`` not finish the last exit (an MMIO access left unserved).

        ``KVM_RUN`` first completes an MMIO exit that ``kvm_run.exit_reason``
        still names: it loads the data into the register and steps the PC past
        the access. After a vCPU reset (``KVM_ARM_VCPU_INIT`` for a new
        ``CPU_ON``) that would skip the new entry point's first instruction;
        after an injected abort, kernels without "KVM: arm64: Don't retire
        aborted MMIO instruction" (Linux 6.9, 6.12 has it: measured) would step
        the PC of the exception entry. Marking the exit done
        (``KVM_EXIT_UNKNOWN``) prevents both. Only from the vCPU's own thread,
        between runs.
        """
        self._run.exit_reason = uapi.KVM_EXIT_UNKNOWN

    # --- KVM_RUN ---------------------------------------------------------------

    def run(self) -> VcpuExit:
        """``KVM_RUN``: run the guest until it needs the VMM; returns the typed exit.

        Call only from the vCPU's own thread. Returns :class:`Interrupted` when
        a kick (:meth:`kick`) stopped it, and clears ``immediate_exit`` then.
        Raises :class:`KvmError` on a failing ``KVM_RUN`` (``ENOEXEC``: the
        vCPU was never initialised; ``ENOSYS``: a guest access outside memory
        that KVM could not decode).
        """
        run = self._run
        fd = self.fd
        with self._runner_lock:
            self._runner = threading.get_ident()
        try:
            result, err = _syscall.ioctl_errno(fd, uapi.KVM_RUN)
        finally:
            with self._runner_lock:
                self._runner = None
        if result < 0:
            if err == errno.EINTR:
                run.immediate_exit = 0
                return Interrupted()
            raise KvmError("KVM_RUN", err, self._run_failure(err))
        return decode(run, self)

    def _run_failure(self, err: int) -> str:
        if err == errno.ENOEXEC:
            return f"vCPU {self.vcpu_id} was not initialised (KVM_ARM_VCPU_INIT comes first)"
        if err == errno.ENOSYS:
            return (f"vCPU {self.vcpu_id} accessed an address outside guest memory with an "
                    "instruction KVM cannot decode (enable KVM_CAP_ARM_NISV_TO_USER to see it)")
        return f"vCPU {self.vcpu_id}"

    # --- kicks (any thread) ------------------------------------------------------

    @property
    def immediate_exit(self) -> bool:
        """``kvm_run.immediate_exit``: the next ``KVM_RUN`` returns ``EINTR`` at once.

        Needs ``KVM_CAP_IMMEDIATE_EXIT``.
        """
        return bool(self._run.immediate_exit)

    @immediate_exit.setter
    def immediate_exit(self, value: bool) -> None:
        self._run.immediate_exit = int(value)

    def kick(self) -> None:
        """Make the vCPU's current or next ``KVM_RUN`` return :class:`Interrupted` (any thread).

        Sets ``immediate_exit`` and, if a thread is inside :meth:`run`, sends
        it :data:`~vcpuhp_kvm.kick.KICK_SIGNAL`. Record the request the vCPU
        thread should act on *before* kicking; the thread looks at its requests
        after every :class:`Interrupted`. Needs
        :func:`~vcpuhp_kvm.kick.install_kick_handler` to have run.
        """
        kick.require_kick_handler()
        with self._runner_lock:
            if self._run is None:
                raise KvmClosed(f"vCPU {self.vcpu_id} is closed: nothing to kick")
            self._run.immediate_exit = 1
            if self._runner is not None:
                kick.signal_thread(self._runner)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd {self._fd}"
        return f"<VcpuFd {self.vcpu_id} {state}>"

