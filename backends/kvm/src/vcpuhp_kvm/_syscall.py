"""One place that calls ``ioctl(2)`` and turns a failure into :class:`KvmError`."""

from __future__ import annotations

import errno
from typing import Any

from vcpuhp_kvm.cdefs import ffi, libc
from vcpuhp_kvm.errors import KvmError


def ioctl(fd: int, request: int, name: str, arg: Any = 0, *, detail: str = "") -> int:
    """``ioctl(fd, request, arg)``; returns its non-negative result.

    ``arg`` is an integer (passed as ``unsigned long``) or a cffi pointer. A call
    interrupted by a signal is retried; any other failure raises
    :class:`KvmError` naming ``name`` (the ioctl) and ``detail``.
    """
    carg = arg if isinstance(arg, ffi.CData) else ffi.cast("unsigned long", arg)
    while True:
        result = int(libc().ioctl(fd, ffi.cast("unsigned long", request), carg))
        if result >= 0:
            return result
        err = ffi.errno
        if err != errno.EINTR:
            raise KvmError(name, err, detail)


def ioctl_errno(fd: int, request: int, arg: Any = 0) -> tuple[int, int]:
    """``ioctl(fd, request, arg)`` without raising: ``(result, errno)``, errno 0 on success.

    For :data:`~vcpuhp_kvm.uapi.KVM_RUN`, whose ``EINTR`` is a result, and for
    probes whose failure is an answer.
    """
    carg = arg if isinstance(arg, ffi.CData) else ffi.cast("unsigned long", arg)
    result = int(libc().ioctl(fd, ffi.cast("unsigned long", request), carg))
    return (result, ffi.errno if result < 0 else 0)
