"""The files for guests *of* the emulated host: a Debian arm64 kernel, busybox, evdev.

The Linux-boot tests boot trixie's arm64 kernel under vcpuhp's kvm backend
inside the emulated host, and the boot loader's host-side tests read the same
file. The test userland (``vcpuhp.testing.linux_userland``) is built from the
busybox and loads the kernel's ``evdev`` module (Debian builds it as a module;
without it the ACPI power button has no event device, so ``system_powerdown``
could not power the guest off), decompressed for busybox ``insmod``. They are
a cache entry of their own, ``l2/<key>/`` (keyed by the kernel and busybox
versions), so a caller that needs only them (``run.py paths``,
direct mode on an arm64 host) never needs QEMU or the whole image.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from arm64host import kernelimage, rootfs
from arm64host.errors import BuildError
from arm64host.kmod import ModuleTree
from arm64host.packages import Resolution, l2_debs

#: Bump when the L2 files change in a way the package versions do not show.
L2_RECIPE_VERSION: Final = 2
#: Environment variables naming the L2 files, and the files' names.
L2_ENV: Final = {
    "VCPUHP_TEST_KERNEL": "vmlinuz",
    "VCPUHP_TEST_KERNEL_IMAGE": "Image",
    "VCPUHP_TEST_BUSYBOX": "busybox",
    "VCPUHP_TEST_EVDEV": "evdev.ko",
}


@dataclass(frozen=True)
class L2Files:
    """One directory holding ``vmlinuz`` (as shipped), ``Image`` (bare), ``busybox`` and
    ``evdev.ko``."""

    directory: Path

    @property
    def vmlinuz(self) -> Path:
        """The kernel package's ``vmlinuz``, as shipped."""
        return self.directory / "vmlinuz"

    @property
    def image(self) -> Path:
        """The bare arm64 ``Image`` extracted from it."""
        return self.directory / "Image"

    @property
    def busybox(self) -> Path:
        """The static arm64 ``busybox`` of ``busybox-static``."""
        return self.directory / "busybox"

    @property
    def evdev(self) -> Path:
        """The kernel's ``evdev`` module, uncompressed."""
        return self.directory / "evdev.ko"

    def complete(self) -> bool:
        """Whether all the files are there."""
        return all(path.is_file()
                   for path in (self.vmlinuz, self.image, self.busybox, self.evdev))


def l2_environment(directory: str | Path) -> dict[str, str]:
    """``VCPUHP_TEST_*`` naming the L2 files in ``directory``."""
    return {name: f"{directory}/{filename}" for name, filename in L2_ENV.items()}


def l2_key(resolution: Resolution) -> str:
    """The cache key of the L2 files of ``resolution``."""
    material = {"recipe": L2_RECIPE_VERSION,
                "packages": sorted((d.name, d.version, d.sha256) for d in l2_debs(resolution))}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:20]


def find_kernel(kernel_root: Path) -> tuple[Path, str]:
    """``boot/vmlinuz-<release>`` of an unpacked kernel package, and the release."""
    candidates = sorted((kernel_root / "boot").glob("vmlinuz-*"))
    if len(candidates) != 1:
        raise BuildError(f"expected one boot/vmlinuz-* in the kernel package, found "
                         f"{[c.name for c in candidates]}")
    return candidates[0], candidates[0].name.removeprefix("vmlinuz-")


def modules_dir(kernel_root: Path, release: str) -> Path:
    """``lib/modules/<release>`` of an unpacked kernel package (merged-/usr or not)."""
    for base in ("usr/lib/modules", "lib/modules"):
        path = kernel_root / base / release
        if path.is_dir():
            return path
    raise BuildError(f"the kernel package has no modules directory for {release}")


def install_l2(target: Path, kernel_root: Path, busybox_deb: Path) -> L2Files:
    """Make ``target`` from an unpacked kernel package and the busybox-static package.

    Written into a sibling directory first and renamed, so an interrupted run
    never leaves a ``target`` that looks complete.
    """
    files = L2Files(target)
    vmlinuz, release = find_kernel(kernel_root)
    [evdev] = ModuleTree(modules_dir(kernel_root, release)).load_order(["evdev"])
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.partial-", dir=target.parent))
    try:
        shutil.copyfile(vmlinuz, staging / "vmlinuz")
        (staging / "Image").write_bytes(kernelimage.extract_image(vmlinuz.read_bytes()))
        (staging / "evdev.ko").write_bytes(evdev.elf)
        rootfs.unpack_deb(busybox_deb, staging / "pkg")
        (staging / "pkg" / "usr" / "bin" / "busybox").rename(staging / "busybox")
        shutil.rmtree(staging / "pkg")
        (staging / "busybox").chmod(0o755)
        staging.chmod(0o755)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return files
