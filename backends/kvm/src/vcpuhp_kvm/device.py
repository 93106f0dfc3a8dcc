"""``DeviceFd``: an in-kernel device made by ``KVM_CREATE_DEVICE`` (the vGICv3 here)."""

from __future__ import annotations

from vcpuhp_kvm._fd import DeviceAttributes


class DeviceFd(DeviceAttributes):
    """A KVM device fd, configured with ``KVM_SET/GET/HAS_DEVICE_ATTR`` (``KVM_CAP_DEVICE_CTRL``).

    Device attributes may be set from any thread, one call at a time.
    """

    _kind = "device fd"

    def __init__(self, fd: int, device_type: int) -> None:
        super().__init__(fd)
        self.device_type = device_type
        """The ``KVM_DEV_TYPE_*`` it was created as."""
