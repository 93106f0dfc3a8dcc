"""A tiny Linux userland for testing CPU hotplug from Linux's side.

Built from a static arm64 busybox (Debian's ``busybox-static``) into an
initramfs; its init prints the four CPU masks of ``/sys/devices/system/cpu``
whenever they change, obeys ``online N`` / ``offline N`` typed at the console,
and powers off when the ACPI power button is pressed. The line protocol is
:mod:`.protocol`; :class:`UserlandConsole` is the host side. It lives in the
wheel (not in ``tests/``) because ``vcpuhp demo --linux`` uses it too, and a
person with an arm64 KVM host builds one with::

    python3 -m vcpuhp.testing.linux_userland --busybox /usr/bin/busybox \\
        --module /lib/modules/$(uname -r)/kernel/drivers/input/evdev.ko.xz -o initrd.cpio
"""

from vcpuhp.testing.linux_userland.build import (
    KernelModule,
    build_initramfs,
    build_initramfs_file,
    check_busybox,
    read_module,
)
from vcpuhp.testing.linux_userland.console import GuestDied, UserlandConsole, parse_masks
from vcpuhp.testing.linux_userland.protocol import CommandResult

__all__ = ["CommandResult", "GuestDied", "KernelModule", "UserlandConsole", "build_initramfs",
           "build_initramfs_file", "check_busybox", "parse_masks", "read_module"]
