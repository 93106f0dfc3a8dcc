"""Kicking a vCPU out of ``KVM_RUN``: a signal to its thread plus ``immediate_exit``.

A thread blocked in ``KVM_RUN`` (running guest code, or waiting in a guest
``WFI``) returns ``EINTR`` as soon as a signal with a handler is delivered to
it; KVM checks for pending signals before entering the guest and while it
waits. A signal sent just *before* the thread enters ``KVM_RUN`` would be
handled in user space and lost, so the kicker first sets
``kvm_run.immediate_exit``, which makes the next ``KVM_RUN`` return ``EINTR``
at once; the vCPU thread clears it after each ``EINTR``. This is how QEMU
(``SIG_IPI`` = SIGUSR1), kvmtool, Firecracker and cloud-hypervisor kick.

From Python: :func:`signal.pthread_kill` sends the signal to one thread, and
the handler must be installed with :func:`signal.signal`, which only the main
thread may call. Python's C-level handler only records the signal, so the
vCPU thread's ``KVM_RUN`` returns ``EINTR`` at once; the Python-level no-op
runs later, in the main thread. Without a handler, SIGUSR1's default action
would kill the process: :func:`install_kick_handler` must run first.

SIGUSR1 rather than a real-time signal: standard signals coalesce, so a burst
of kicks to a busy vCPU queues at most one.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from vcpuhp.errors import BackendError

KICK_SIGNAL = signal.SIGUSR1
"""The signal that interrupts ``KVM_RUN``."""


def _on_kick(signum: int, frame: FrameType | None) -> None:
    """The handler's only job is to exist: its delivery already made KVM_RUN return."""


_install_lock = threading.Lock()


def install_kick_handler() -> None:
    """Install the no-op handler of :data:`KICK_SIGNAL` (main thread only; idempotent).

    Raises :class:`~vcpuhp.errors.BackendError` if called from another thread
    before it was installed, or if another handler already owns the signal.
    """
    with _install_lock:
        if kick_handler_installed():
            return
        if threading.current_thread() is not threading.main_thread():
            raise BackendError(
                f"the vCPU kick handler ({KICK_SIGNAL.name}) must be installed from the "
                "main thread: create the KVM machine there, or call "
                "vcpuhp_kvm.install_kick_handler() from it first"
            )
        current = signal.getsignal(KICK_SIGNAL)
        if current not in (signal.SIG_DFL, _on_kick):
            raise BackendError(
                f"{KICK_SIGNAL.name} already has a handler ({current!r}); the KVM backend "
                "needs it to kick vCPUs out of KVM_RUN"
            )
        signal.signal(KICK_SIGNAL, _on_kick)


def kick_handler_installed() -> bool:
    """Whether :data:`KICK_SIGNAL` is handled by the kick handler now."""
    return signal.getsignal(KICK_SIGNAL) is _on_kick


def require_kick_handler() -> None:
    """Raise :class:`~vcpuhp.errors.BackendError` unless the kick handler is installed."""
    if not kick_handler_installed():
        raise BackendError(
            f"cannot kick a vCPU: {KICK_SIGNAL.name} has no kick handler and would kill "
            "the process; call vcpuhp_kvm.install_kick_handler() from the main thread first"
        )


def signal_thread(thread_ident: int) -> None:
    """Send :data:`KICK_SIGNAL` to the thread ``thread_ident`` (a ``Thread.ident``)."""
    require_kick_handler()
    signal.pthread_kill(thread_ident, KICK_SIGNAL)
