"""Building the emulated host's bootable image, once per machine, cached by content.

Steps (each explained in README.md):

1. the pinned package closures (:mod:`arm64host.packages`);
2. the cache key is a hash of the pinned closures, the wheels, the kernel
   modules, the init script and :data:`RECIPE_VERSION`: if
   ``images/<key>`` is complete, that is the image (no network at all);
3. otherwise download what is not cached, stage a root file system from the
   userland packages, take the kernel's ``Image`` and the 9p modules from the
   kernel package, write the initramfs (newc cpio), boot it once to compile
   every Python module of the image with the image's own Python 3.13 (Debian
   ships no ``.pyc``), and add the bytecode as a second cpio archive.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from arm64host import guestinit, kernelimage, rootfs
from arm64host.apt import DEFAULT_MIRROR
from arm64host.console import new_nonce
from arm64host.cpio import CpioWriter
from arm64host.errors import BuildError
from arm64host.guest import BootSpec, boot_and_run
from arm64host.hosttools import BUILD_TOOLS, QEMU, ensure_tools
from arm64host.kmod import ModuleTree
from arm64host.l2files import (
    L2_RECIPE_VERSION,
    L2Files,
    find_kernel,
    install_l2,
    l2_key,
    modules_dir,
)
from arm64host.layout import CacheLayout
from arm64host.packages import WHEELS, PackageSource, PinnedWheel, Resolution, l2_debs
from arm64host.qemu import HostShare

#: Bump when the image's contents change in a way the key does not see
#: (a different pruning rule, a new system file ...).
RECIPE_VERSION: Final = 2
#: Modules the init loads (with their dependencies): the 9p file system over virtio.
KERNEL_MODULES: Final = ("9p", "9pnet_virtio")
COMPILE_TIMEOUT_S: Final = 1800.0
_MANIFEST: Final = "manifest.json"


@dataclass(frozen=True)
class HostImage:
    """A built image and what it holds."""

    key: str
    directory: Path
    manifest: dict[str, Any]
    l2: L2Files

    @property
    def kernel(self) -> Path:
        """The bare arm64 ``Image`` QEMU boots."""
        return self.directory / "Image"

    @property
    def initrd(self) -> Path:
        """The initramfs (base archive + bytecode archive)."""
        return self.directory / "initrd.cpio"

    @property
    def python(self) -> str:
        """The image's interpreter name (``python3.13``)."""
        return str(self.manifest["python"])


def image_key(resolution: Resolution, wheels: Sequence[PinnedWheel] = WHEELS) -> str:
    """The cache key of the image built from ``resolution`` with this recipe."""
    material = {
        "recipe": RECIPE_VERSION,
        "l2_recipe": L2_RECIPE_VERSION,  # the manifest names the L2 files of this recipe
        "packages": sorted((d.name, d.version, d.sha256)
                           for d in [*resolution.userland, *resolution.kernel]),
        "wheels": sorted((w.project, w.version, w.sha256) for w in wheels),
        "modules": list(KERNEL_MODULES),
        "init": guestinit.INIT_SCRIPT,
        "pruned": list(rootfs.PRUNED),
    }
    encoded = json.dumps(material, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()[:20]


class ImageBuilder:
    """Finds or builds the image for this machine's cache."""

    def __init__(self, layout: CacheLayout, log: Callable[[str], None],
                 console: TextIO | None = None, mirror: str = DEFAULT_MIRROR) -> None:
        self.layout = layout
        self.log = log
        self.console = console
        self.packages = PackageSource(layout, log, mirror)

    # -- the image ------------------------------------------------------------------

    def cached(self) -> HostImage | None:
        """The image for the pinned closures if it is built (no network, no build)."""
        pinned = self.packages.pinned()
        return None if pinned is None else self._load(image_key(pinned))

    def ensure(self, refresh: bool = False) -> HostImage:
        """The image, built first if this machine has none for the current closures."""
        found = None if refresh else self.cached()
        if found is not None:
            return found
        with self.layout.exclusive(self.log):
            resolution = self.packages.resolution(refresh)
            key = image_key(resolution)
            found = self._load(key)
            if found is not None:
                return found
            return self._build(resolution, key)

    def ensure_l2(self, refresh: bool = False) -> L2Files:
        """The L2 files alone: no QEMU, no image (direct mode, host-side tests)."""
        pinned = None if refresh else self.packages.pinned()
        if pinned is not None and (files := L2Files(self.layout.l2(l2_key(pinned)))).complete():
            return files
        with self.layout.exclusive(self.log):
            ensure_tools(BUILD_TOOLS, self.log)
            resolution = self.packages.resolution(refresh)
            files = L2Files(self.layout.l2(l2_key(resolution)))
            if files.complete():
                return files
            self.packages.debs(l2_debs(resolution))
            scratch = Path(tempfile.mkdtemp(prefix="l2-scratch.partial-", dir=self.layout.root))
            try:
                kernel_root = scratch / "kernel-pkg"
                for deb in resolution.kernel:
                    rootfs.unpack_deb(self.packages.apt.archives / deb.filename, kernel_root)
                return self._install_l2(resolution, kernel_root)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)

    def _install_l2(self, resolution: Resolution, kernel_root: Path) -> L2Files:
        files = L2Files(self.layout.l2(l2_key(resolution)))
        if files.complete():
            return files
        [busybox] = [d for d in l2_debs(resolution) if d.name == "busybox-static"]
        return install_l2(files.directory, kernel_root,
                          self.packages.apt.archives / busybox.filename)

    def _load(self, key: str) -> HostImage | None:
        directory = self.layout.image(key)
        manifest_path = directory / _MANIFEST
        if not manifest_path.is_file():
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
            l2 = L2Files(self.layout.l2(str(manifest["l2_key"])))
        except (ValueError, KeyError):
            return None
        image = HostImage(key=key, directory=directory, manifest=manifest, l2=l2)
        complete = image.kernel.is_file() and image.initrd.is_file() and l2.complete()
        return image if complete else None

    def _build(self, resolution: Resolution, key: str) -> HostImage:
        ensure_tools([*BUILD_TOOLS, QEMU], self.log)
        started = time.monotonic()
        self.log(f"downloading {len(resolution.userland) + len(resolution.kernel)} packages "
                 f"(cached ones are skipped) into {self.packages.apt.archives}")
        self.packages.debs([*resolution.userland, *resolution.kernel])
        wheels = [self.packages.wheel(wheel) for wheel in WHEELS]
        downloaded = time.monotonic()
        final = self.layout.image(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{key}.partial-", dir=final.parent))
        try:
            manifest = self._stage(resolution, wheels, staging)
            built = time.monotonic()
            self._compile_bytecode(staging, manifest)
            compiled = time.monotonic()
            manifest.update(key=key, recipe=RECIPE_VERSION, timings_s={
                "download": round(downloaded - started, 1),
                "stage": round(built - downloaded, 1),
                "compile_bytecode": round(compiled - built, 1)})
            (staging / _MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
            for scratch in ("rootfs", "kernel-pkg", "base.cpio", "pyc.cpio"):
                _remove(staging / scratch)
            staging.chmod(0o755)
            shutil.rmtree(final, ignore_errors=True)  # an incomplete one, if any
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        image = self._load(key)
        assert image is not None
        self.log(f"image {key} built in {time.monotonic() - started:.0f} s: {final}")
        return image

    def _stage(self, resolution: Resolution, wheels: Sequence[Path],
               staging: Path) -> dict[str, Any]:
        self.log(f"unpacking {len(resolution.userland)} packages into the root file system")
        root = staging / "rootfs"
        root.mkdir()
        for deb in resolution.userland:
            rootfs.unpack_deb(self.packages.apt.archives / deb.filename, root)
        rootfs.merge_usr(root)
        rootfs.prune(root)
        python = rootfs.python_name(root)
        for wheel in wheels:
            rootfs.install_wheel(wheel, root, python)
        rootfs.add_system_files(root)

        kernel_root = staging / "kernel-pkg"
        for deb in resolution.kernel:
            rootfs.unpack_deb(self.packages.apt.archives / deb.filename, kernel_root)
        vmlinuz, release = find_kernel(kernel_root)
        with vmlinuz.open("rb") as handle:
            kernel_format = kernelimage.detect_format(handle.read(kernelimage.IMAGE_HEADER_SIZE))
        l2 = self._install_l2(resolution, kernel_root)
        _link_or_copy(l2.image, staging / "Image")  # QEMU boots the same bare Image
        modules = ModuleTree(modules_dir(kernel_root, release)).load_order(KERNEL_MODULES)
        rootfs.install_modules(root, [(m.name, m.elf) for m in modules],
                               guestinit.GUEST_MODULES_DIR)

        with (staging / "base.cpio").open("wb") as stream:
            writer = CpioWriter(stream)
            entries = writer.add_tree(root)
            writer.add_char_device("dev/console", 5, 1)
            writer.finish()
        return {
            "suite": resolution.suite,
            "packages": {d.name: d.version for d in [*resolution.userland, *resolution.kernel]},
            "kernel_release": release,
            "l2_key": l2_key(resolution),
            "kernel_format": kernel_format.value,
            "modules": [m.name for m in modules],
            "python": python,
            "wheels": [path.name for path in wheels],
            "cpio_entries": entries,
        }

    def _compile_bytecode(self, staging: Path, manifest: dict[str, Any]) -> None:
        """Boot the base image once and compile its Python modules with its own Python."""
        python = manifest["python"]
        directories = [f"/usr/lib/{python}", "/usr/lib/python3/dist-packages",
                       f"/usr/local/lib/{python}/dist-packages"]
        run_dir = Path(tempfile.mkdtemp(prefix="compile-", dir=staging))
        out = run_dir / "pyc"
        out.mkdir()
        (run_dir / "setup.sh").write_text(guestinit.setup_script([], "/"))
        env = {"PATH": guestinit.GUEST_PATH, "HOME": "/root", "LANG": "C.UTF-8",
               "PYTHONPYCACHEPREFIX": f"{guestinit.GUEST_RUN_DIR}/pyc"}
        (run_dir / "command.sh").write_text(guestinit.command_script(
            ["python3", "-m", "compileall", "-q", "-j", "0",
             "--invalidation-mode", "unchecked-hash", *directories], env, "/"))
        self.log("compiling the image's Python modules inside the emulated host "
                 "(once per image)")
        spec = BootSpec(kernel=staging / "Image", initrd=staging / "base.cpio",
                        shares=[HostShare(guestinit.RUN_SHARE_TAG, run_dir)])
        result = boot_and_run(spec, new_nonce(), self.console, timeout=COMPILE_TIMEOUT_S)
        if result.exit_status != 0:
            raise BuildError(f"compileall in the emulated host exited with "
                             f"{result.exit_status} (see the console output above)")
        with (staging / "pyc.cpio").open("wb") as stream:
            writer = CpioWriter(stream)
            pyc_entries = writer.add_tree(out, prefix=guestinit.GUEST_PYC_PREFIX.lstrip("/"))
            writer.finish()
        with (staging / "initrd.cpio").open("wb") as initrd:
            for part in ("base.cpio", "pyc.cpio"):
                with (staging / part).open("rb") as source:
                    shutil.copyfileobj(source, initrd, 1 << 20)
        manifest.update(
            pyc_entries=pyc_entries,
            sizes_bytes={"base_cpio": (staging / "base.cpio").stat().st_size,
                         "pyc_cpio": (staging / "pyc.cpio").stat().st_size,
                         "initrd": (staging / "initrd.cpio").stat().st_size,
                         "Image": (staging / "Image").stat().st_size},
            compile_boot_s=round(result.boot_seconds, 1),
            compile_command_s=round(result.command_seconds, 1))
        shutil.rmtree(run_dir)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
