"""The shared base of the KVM file-descriptor objects, and device attributes."""

from __future__ import annotations

import errno
import os
import threading
from types import TracebackType
from typing import Any, Self

from vcpuhp_kvm import _syscall, uapi
from vcpuhp_kvm.cdefs import address, new
from vcpuhp_kvm.errors import KvmClosed, KvmError


class KvmFd:
    """An owned KVM file descriptor, closed once by :meth:`close` or ``with``."""

    _kind = "KVM fd"

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd
        self._close_lock = threading.Lock()

    @property
    def fd(self) -> int:
        """The descriptor; :class:`~vcpuhp_kvm.errors.KvmClosed` once closed."""
        fd = self._fd
        if fd is None:
            raise KvmClosed(f"this {self._kind} is closed")
        return fd

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._fd is None

    def _release(self) -> None:
        """Free what the subclass holds besides the fd (runs once, before the fd closes)."""

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        with self._close_lock:
            fd, self._fd = self._fd, None
            if fd is None:
                return
            try:
                self._release()
            finally:
                os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._fd is None else f"fd {self._fd}"
        return f"<{type(self).__name__} {state}>"


class DeviceAttributes(KvmFd):
    """``KVM_SET/GET/HAS_DEVICE_ATTR`` on this fd (a device, or a VM on Linux 6.4+)."""

    def set_attr(self, group: int, attr: int, data: Any = None, *, detail: str = "") -> None:
        """``KVM_SET_DEVICE_ATTR``: set ``(group, attr)`` from ``data`` (a cffi pointer or None).

        ``detail`` says what is being set, for the error message.
        """
        self._attr_ioctl(uapi.KVM_SET_DEVICE_ATTR, "KVM_SET_DEVICE_ATTR", group, attr, data,
                         detail)

    def set_attr_u32(self, group: int, attr: int, value: int) -> None:
        """``KVM_SET_DEVICE_ATTR`` with a ``__u32`` payload."""
        self.set_attr(group, attr, new("uint32_t *", value))

    def set_attr_u64(self, group: int, attr: int, value: int) -> None:
        """``KVM_SET_DEVICE_ATTR`` with a ``__u64`` payload."""
        self.set_attr(group, attr, new("uint64_t *", value))

    def get_attr_u64(self, group: int, attr: int, value: int = 0) -> int:
        """``KVM_GET_DEVICE_ATTR`` into a ``__u64`` preset to ``value`` (some read an index)."""
        box = new("uint64_t *", value)
        self._attr_ioctl(uapi.KVM_GET_DEVICE_ATTR, "KVM_GET_DEVICE_ATTR", group, attr, box)
        return int(box[0])

    def get_attr_u32(self, group: int, attr: int) -> int:
        """``KVM_GET_DEVICE_ATTR`` into a ``__u32``."""
        box = new("uint32_t *")
        self._attr_ioctl(uapi.KVM_GET_DEVICE_ATTR, "KVM_GET_DEVICE_ATTR", group, attr, box)
        return int(box[0])

    def has_attr(self, group: int, attr: int) -> bool:
        """``KVM_HAS_DEVICE_ATTR``: whether this fd knows ``(group, attr)``.

        ``ENXIO`` (unknown attribute) and, on a fd that has no attributes at
        all, ``EINVAL`` / ``ENOTTY`` are a plain ``False``.
        """
        request = new("struct kvm_device_attr *", {"group": group, "attr": attr})
        result, err = _syscall.ioctl_errno(self.fd, uapi.KVM_HAS_DEVICE_ATTR, request)
        if result >= 0:
            return True
        if err in (errno.ENXIO, errno.EINVAL, errno.ENOTTY):
            return False
        raise KvmError("KVM_HAS_DEVICE_ATTR", err, self._attr_detail(group, attr))

    def _attr_ioctl(
        self, request: int, name: str, group: int, attr: int, data: Any, detail: str = ""
    ) -> None:
        payload = 0 if data is None else address(data)
        arg = new("struct kvm_device_attr *", {"group": group, "attr": attr, "addr": payload})
        _syscall.ioctl(self.fd, request, name, arg,
                       detail=detail or self._attr_detail(group, attr))

    def _attr_detail(self, group: int, attr: int) -> str:
        return f"group {group} attribute {attr:#x} on the {self._kind}"
