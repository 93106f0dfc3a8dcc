"""Errors of the KVM layer, rooted in :class:`vcpuhp.errors.BackendError`."""

from __future__ import annotations

import errno as _errno
import os

from vcpuhp.errors import BackendError


class KvmError(BackendError):
    """A KVM ioctl (or a system call around it) failed.

    ``str(error)`` reads ``"KVM_CREATE_VCPU failed: EINVAL (22)"``, followed by
    what the caller was doing when it helps.
    """

    def __init__(self, ioctl: str, errno: int, detail: str = "") -> None:
        self.ioctl = ioctl
        self.errno = errno
        name = _errno.errorcode.get(errno, "E?")
        message = f"{ioctl} failed: {name} ({errno})"
        if detail:
            message += f": {detail}"
        else:
            message += f": {os.strerror(errno)}"
        super().__init__(message)


class KvmClosed(BackendError):
    """A KVM object was used after :meth:`close`."""
