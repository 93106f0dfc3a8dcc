"""``Kvm``: the ``/dev/kvm`` system fd (API version, capabilities, VM creation)."""

from __future__ import annotations

import os

from vcpuhp.errors import ConfigError
from vcpuhp_kvm import _syscall, uapi
from vcpuhp_kvm._fd import KvmFd
from vcpuhp_kvm.vm import Vm

KVM_DEVICE = "/dev/kvm"


class Kvm(KvmFd):
    """An open ``/dev/kvm``. Its calls may be made from any thread.

    Opening raises :class:`OSError` (``ENOENT``: no KVM in this kernel;
    ``EACCES``: no permission), as ``open(2)`` reports it.
    """

    _kind = "/dev/kvm fd"

    def __init__(self, path: str = KVM_DEVICE) -> None:
        super().__init__(os.open(path, os.O_RDWR | os.O_CLOEXEC))

    def api_version(self) -> int:
        """``KVM_GET_API_VERSION``: 12 on every kernel this layer supports."""
        return _syscall.ioctl(self.fd, uapi.KVM_GET_API_VERSION, "KVM_GET_API_VERSION")

    def check_extension(self, capability: int) -> int:
        """``KVM_CHECK_EXTENSION``: the host's value of ``KVM_CAP_*`` (0 = absent)."""
        return _syscall.ioctl(self.fd, uapi.KVM_CHECK_EXTENSION, "KVM_CHECK_EXTENSION",
                              capability, detail=f"capability {capability}")

    def vcpu_mmap_size(self) -> int:
        """``KVM_GET_VCPU_MMAP_SIZE``: bytes to mmap from a vCPU fd (``kvm_run`` and more)."""
        return _syscall.ioctl(self.fd, uapi.KVM_GET_VCPU_MMAP_SIZE, "KVM_GET_VCPU_MMAP_SIZE")

    def max_ipa_bits(self) -> int:
        """The largest guest-physical address size (``KVM_CAP_ARM_VM_IPA_SIZE``; 40 without it)."""
        return self.check_extension(uapi.KVM_CAP_ARM_VM_IPA_SIZE) or 40

    def max_vcpus(self) -> int:
        """``KVM_CAP_MAX_VCPUS`` (falling back to ``KVM_CAP_NR_VCPUS``, then 4, as api.rst says)."""
        return (self.check_extension(uapi.KVM_CAP_MAX_VCPUS)
                or self.check_extension(uapi.KVM_CAP_NR_VCPUS) or 4)

    def create_vm(self, ipa_bits: int | None = None) -> Vm:
        """``KVM_CREATE_VM``: a new VM; ``ipa_bits`` sizes its guest-physical space.

        ``None`` takes KVM's default of 40 bits (1 TiB); another size needs
        ``KVM_CAP_ARM_VM_IPA_SIZE`` and must lie in 32..:meth:`max_ipa_bits`.
        """
        machine_type = 0
        if ipa_bits is not None:
            limit = self.max_ipa_bits()
            if not 32 <= ipa_bits <= limit:
                raise ConfigError(f"a guest-physical address size of {ipa_bits} bits is not "
                                  f"available: this host's KVM supports 32-{limit} bits")
            machine_type = ipa_bits & uapi.KVM_VM_TYPE_ARM_IPA_SIZE_MASK
        fd = _syscall.ioctl(self.fd, uapi.KVM_CREATE_VM, "KVM_CREATE_VM", machine_type,
                            detail=f"machine type {machine_type:#x}")
        try:
            return Vm(fd, self.vcpu_mmap_size())
        except BaseException:
            os.close(fd)
            raise
