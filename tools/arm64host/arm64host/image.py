"""Building the emulated host's bootable image, once per machine, cached by content.

Steps (each explained in README.md):

1. resolve the Debian trixie arm64 closures (userland; kernel) with the
   private apt and pin them in ``resolution.json``;
2. download what is not cached (``.deb`` files; the qemu.qmp wheel, by hash);
3. the cache key is a hash of the pinned closures, the wheels, the kernel
   modules, the init script and :data:`RECIPE_VERSION`: if
   ``images/<key>`` is complete, that is the image (no network at all);
4. otherwise stage a root file system from the userland packages, take the
   kernel's ``Image`` and the 9p modules from the kernel package, write the
   initramfs (newc cpio), boot it once to compile every Python module of the
   image with the image's own Python 3.13 (Debian ships no ``.pyc``), and add
   the bytecode as a second cpio archive.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from arm64host import guestinit, kernelimage, rootfs
from arm64host.apt import DEFAULT_MIRROR, DebFile, PrivateApt, sha256_of
from arm64host.console import new_nonce
from arm64host.cpio import CpioWriter
from arm64host.errors import BuildError, FetchError
from arm64host.guest import BootSpec, boot_and_run
from arm64host.hosttools import BUILD_TOOLS, QEMU, ensure_tools
from arm64host.kmod import ModuleTree
from arm64host.layout import CacheLayout
from arm64host.qemu import HostShare

#: Bump when the image's contents change in a way the key does not see
#: (a different pruning rule, a new system file ...).
RECIPE_VERSION: Final = 2
SUITE: Final = "trixie"
ARCH: Final = "arm64"
#: Unpacked into the root file system with their whole dependency closure.
USERLAND_PACKAGES: Final = (
    "busybox-static", "python3", "python3-cffi", "python3-cffi-backend", "python3-pytest",
    "python3-pluggy", "python3-stevedore", "python3-hypothesis", "python3-libfdt",
)
#: Resolved like the userland; only its ``linux-image-*`` packages are used
#: (the rest of its closure, initramfs-tools and kmod, serve its maintainer
#: scripts, which never run here).
KERNEL_PACKAGES: Final = ("linux-image-arm64",)
#: Modules the init loads (with their dependencies): the 9p file system over virtio.
KERNEL_MODULES: Final = ("9p", "9pnet_virtio")
BUILD_LOCK_TIMEOUT_S: Final = 3600.0
COMPILE_TIMEOUT_S: Final = 1800.0
PIP_TIMEOUT_S: Final = 600.0
_MANIFEST: Final = "manifest.json"


@dataclass(frozen=True)
class PinnedWheel:
    """A pure-Python wheel from PyPI that Debian does not package, pinned by hash."""

    project: str
    version: str
    sha256: str

    @property
    def filename_prefix(self) -> str:
        """The start of the wheel's file name (``qemu_qmp-0.0.6-``)."""
        return f"{self.project.replace('.', '_').replace('-', '_')}-{self.version}-"


WHEELS: Final = (
    PinnedWheel("qemu.qmp", "0.0.6",
                "5d7c5af0e9de427696e3bf72e333965c3a697929f77f6b7ddc30c989fc7b539b"),
)


@dataclass(frozen=True)
class Resolution:
    """The pinned package closures."""

    suite: str
    mirror: str
    requested: dict[str, list[str]]
    userland: list[DebFile]
    kernel: list[DebFile]

    def to_json(self) -> dict[str, Any]:
        """The JSON form stored in ``resolution.json``."""
        return {"suite": self.suite, "mirror": self.mirror, "requested": self.requested,
                "userland": [deb.to_json() for deb in self.userland],
                "kernel": [deb.to_json() for deb in self.kernel]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Resolution:
        """The inverse of :meth:`to_json`."""
        return cls(suite=obj["suite"], mirror=obj["mirror"], requested=obj["requested"],
                   userland=[DebFile.from_json(d) for d in obj["userland"]],
                   kernel=[DebFile.from_json(d) for d in obj["kernel"]])


def requested_packages() -> dict[str, list[str]]:
    """The top-level package lists, as recorded in a resolution."""
    return {"userland": list(USERLAND_PACKAGES), "kernel": list(KERNEL_PACKAGES)}


def kernel_debs(closure: Sequence[DebFile]) -> list[DebFile]:
    """The packages of a kernel closure that carry the kernel (``linux-image-*``)."""
    chosen = [deb for deb in closure if deb.name.startswith("linux-image-")]
    if not any(deb.name != "linux-image-arm64" for deb in chosen):
        raise FetchError(f"no versioned linux-image package in the closure "
                         f"{[deb.name for deb in closure]}")
    return chosen


@dataclass(frozen=True)
class L2Files:
    """The files for guests *of* the emulated host: a Debian arm64 kernel and busybox."""

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

    def complete(self) -> bool:
        """Whether all three files are there."""
        return all(path.is_file() for path in (self.vmlinuz, self.image, self.busybox))


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
        "packages": sorted((d.name, d.version, d.sha256)
                           for d in [*resolution.userland, *resolution.kernel]),
        "wheels": sorted((w.project, w.version, w.sha256) for w in wheels),
        "modules": list(KERNEL_MODULES),
        "init": guestinit.INIT_SCRIPT,
        "pruned": list(rootfs.PRUNED),
    }
    encoded = json.dumps(material, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()[:20]


def l2_debs(resolution: Resolution) -> list[DebFile]:
    """The packages the L2 files come from: the kernel's and ``busybox-static``."""
    return [*resolution.kernel, *(d for d in resolution.userland if d.name == "busybox-static")]


def l2_key(resolution: Resolution) -> str:
    """The cache key of the L2 files of ``resolution``."""
    material = {"recipe": RECIPE_VERSION,
                "packages": sorted((d.name, d.version, d.sha256) for d in l2_debs(resolution))}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:20]


class ImageBuilder:
    """Finds or builds the image for this machine's cache."""

    def __init__(self, layout: CacheLayout, log: Callable[[str], None],
                 console: TextIO | None = None, mirror: str = DEFAULT_MIRROR) -> None:
        self.layout = layout
        self.log = log
        self.console = console
        self.apt = PrivateApt(layout.apt, suite=SUITE, arch=ARCH, mirror=mirror)

    # -- resolution ---------------------------------------------------------------

    def resolution(self, refresh: bool = False) -> Resolution:
        """The pinned closures: from ``resolution.json``, or resolved now (network)."""
        path = self.layout.resolution
        if not refresh and path.exists():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                saved = Resolution.from_json(json.loads(path.read_text()))
                if (saved.requested == requested_packages() and saved.suite == SUITE
                        and saved.mirror == self.apt.mirror):
                    return saved
        self.log(f"resolving Debian {SUITE} {ARCH} packages (private apt in {self.apt.root})")
        self.apt.update()
        resolved = Resolution(suite=SUITE, mirror=self.apt.mirror,
                              requested=requested_packages(),
                              userland=self.apt.resolve(USERLAND_PACKAGES),
                              kernel=kernel_debs(self.apt.resolve(KERNEL_PACKAGES)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(resolved.to_json(), indent=1) + "\n")
        return resolved

    # -- the image ------------------------------------------------------------------

    def cached(self, refresh: bool = False) -> HostImage | None:
        """The image for the pinned closures if it is built (no network, no build)."""
        if refresh or not self.layout.resolution.exists():
            return None
        return self._load(image_key(self.resolution()))

    def ensure(self, refresh: bool = False) -> HostImage:
        """The image, built first if this machine has none for the current closures."""
        found = self.cached(refresh)
        if found is not None:
            return found
        self.layout.root.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.layout.lock, BUILD_LOCK_TIMEOUT_S, self.log):
            _clean_partial_builds(self.layout)
            resolution = self.resolution(refresh)
            key = image_key(resolution)
            found = self._load(key)
            if found is not None:
                return found
            return self._build(resolution, key)

    def ensure_l2(self, refresh: bool = False) -> L2Files:
        """The L2 files alone: no QEMU, no image (direct mode, host-side tests)."""
        if not refresh and self.layout.resolution.exists():
            files = L2Files(self.layout.l2(l2_key(self.resolution())))
            if files.complete():
                return files
        self.layout.root.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.layout.lock, BUILD_LOCK_TIMEOUT_S, self.log):
            ensure_tools(BUILD_TOOLS, self.log)
            resolution = self.resolution(refresh)
            files = L2Files(self.layout.l2(l2_key(resolution)))
            if files.complete():
                return files
            self.apt.download(l2_debs(resolution))
            scratch = Path(tempfile.mkdtemp(prefix="l2-", dir=self.layout.root))
            try:
                kernel_root = scratch / "kernel-pkg"
                for deb in resolution.kernel:
                    rootfs.unpack_deb(self.apt.archives / deb.filename, kernel_root)
                return self._install_l2(resolution, kernel_root)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)

    def _install_l2(self, resolution: Resolution, kernel_root: Path) -> L2Files:
        """Make the L2 files of ``resolution`` from an unpacked kernel package (lock held)."""
        files = L2Files(self.layout.l2(l2_key(resolution)))
        if files.complete():
            return files
        vmlinuz, _ = _find_kernel(kernel_root)
        files.directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{files.directory.name}.partial-",
                                        dir=files.directory.parent))
        try:
            shutil.copyfile(vmlinuz, staging / "vmlinuz")
            (staging / "Image").write_bytes(kernelimage.extract_image(vmlinuz.read_bytes()))
            [busybox_deb] = [d for d in l2_debs(resolution) if d.name == "busybox-static"]
            rootfs.unpack_deb(self.apt.archives / busybox_deb.filename, staging / "pkg")
            (staging / "pkg" / "usr" / "bin" / "busybox").rename(staging / "busybox")
            shutil.rmtree(staging / "pkg")
            (staging / "busybox").chmod(0o755)
            staging.chmod(0o755)
            shutil.rmtree(files.directory, ignore_errors=True)
            staging.rename(files.directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return files

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
                 f"(cached ones are skipped) into {self.apt.archives}")
        self.apt.download([*resolution.userland, *resolution.kernel])
        wheels = [self._wheel(wheel) for wheel in WHEELS]
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

    def _wheel(self, wheel: PinnedWheel) -> Path:
        self.layout.pypi.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.layout.pypi.glob(f"{wheel.filename_prefix}*.whl")):
            if sha256_of(path) == wheel.sha256:
                return path
        requirements = self.layout.pypi / f"{wheel.project}.txt"
        requirements.write_text(f"{wheel.project}=={wheel.version} "
                                f"--hash=sha256:{wheel.sha256}\n")
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                   "--only-binary=:all:", "--require-hashes", "-r", str(requirements),
                   "-d", str(self.layout.pypi)]
        try:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=PIP_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise FetchError(f"pip download of {wheel.project} took over "
                             f"{PIP_TIMEOUT_S:.0f} s") from exc
        if done.returncode != 0:
            raise FetchError(f"{' '.join(command)} failed: {done.stderr.strip()}")
        for path in self.layout.pypi.glob(f"{wheel.filename_prefix}*.whl"):
            if sha256_of(path) == wheel.sha256:
                return path
        raise FetchError(f"pip did not leave {wheel.project} {wheel.version} "
                         f"(sha256 {wheel.sha256}) in {self.layout.pypi}")

    def _stage(self, resolution: Resolution, wheels: Sequence[Path],
               staging: Path) -> dict[str, Any]:
        self.log(f"unpacking {len(resolution.userland)} packages into the root file system")
        root = staging / "rootfs"
        root.mkdir()
        for deb in resolution.userland:
            rootfs.unpack_deb(self.apt.archives / deb.filename, root)
        rootfs.merge_usr(root)
        rootfs.prune(root)
        python = rootfs.python_name(root)
        for wheel in wheels:
            rootfs.install_wheel(wheel, root, python)
        rootfs.add_system_files(root)

        kernel_root = staging / "kernel-pkg"
        for deb in resolution.kernel:
            rootfs.unpack_deb(self.apt.archives / deb.filename, kernel_root)
        vmlinuz, release = _find_kernel(kernel_root)
        with vmlinuz.open("rb") as handle:
            kernel_format = kernelimage.detect_format(handle.read(kernelimage.IMAGE_HEADER_SIZE))
        l2 = self._install_l2(resolution, kernel_root)
        _link_or_copy(l2.image, staging / "Image")  # QEMU boots the same bare Image
        modules = ModuleTree(_modules_dir(kernel_root, release)).load_order(KERNEL_MODULES)
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


def _find_kernel(kernel_root: Path) -> tuple[Path, str]:
    candidates = sorted((kernel_root / "boot").glob("vmlinuz-*"))
    if len(candidates) != 1:
        raise BuildError(f"expected one boot/vmlinuz-* in the kernel package, found "
                         f"{[c.name for c in candidates]}")
    return candidates[0], candidates[0].name.removeprefix("vmlinuz-")


def _modules_dir(kernel_root: Path, release: str) -> Path:
    for base in ("usr/lib/modules", "lib/modules"):
        path = kernel_root / base / release
        if path.is_dir():
            return path
    raise BuildError(f"the kernel package has no modules directory for {release}")


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


@contextlib.contextmanager
def _exclusive(lock_path: Path, timeout: float, log: Callable[[str], None]) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path``, waiting at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with lock_path.open("a") as handle:
        waited = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise BuildError(f"another build held {lock_path} for over "
                                     f"{timeout:.0f} s") from exc
                if not waited:
                    log(f"waiting for another build to release {lock_path}")
                    waited = True
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _clean_partial_builds(layout: CacheLayout) -> None:
    """Remove partial builds left by an interrupted run (the caller holds the lock)."""
    if layout.images.is_dir():
        for path in layout.images.glob("*.partial-*"):
            shutil.rmtree(path, ignore_errors=True)


