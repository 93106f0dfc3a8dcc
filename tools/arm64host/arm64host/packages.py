"""What the emulated host is made of, and fetching it: Debian packages and PyPI wheels.

The top-level package lists live here; their dependency closures are resolved
by the private apt (:mod:`arm64host.apt`) and pinned in ``resolution.json``,
so later runs use the same versions without touching the network. qemu.qmp is
not packaged by Debian: its pure-Python wheel comes from PyPI, pinned by hash.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from arm64host.apt import DEFAULT_MIRROR, DebFile, PrivateApt, sha256_of
from arm64host.errors import FetchError
from arm64host.layout import CacheLayout

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
PIP_TIMEOUT_S: Final = 600.0


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


def l2_debs(resolution: Resolution) -> list[DebFile]:
    """The packages the L2 files come from: the kernel's and ``busybox-static``."""
    return [*resolution.kernel, *(d for d in resolution.userland if d.name == "busybox-static")]


class PackageSource:
    """Resolves, pins and downloads the packages into one cache."""

    def __init__(self, layout: CacheLayout, log: Callable[[str], None],
                 mirror: str = DEFAULT_MIRROR) -> None:
        self.layout = layout
        self.log = log
        self.apt = PrivateApt(layout.apt, suite=SUITE, arch=ARCH, mirror=mirror)

    def pinned(self) -> Resolution | None:
        """The pinned closures if ``resolution.json`` has them for today's lists."""
        path = self.layout.resolution
        if not path.exists():
            return None
        with contextlib.suppress(ValueError, KeyError, TypeError):
            saved = Resolution.from_json(json.loads(path.read_text()))
            if (saved.requested == requested_packages() and saved.suite == SUITE
                    and saved.mirror == self.apt.mirror):
                return saved
        return None

    def resolution(self, refresh: bool = False) -> Resolution:
        """The pinned closures: from ``resolution.json``, or resolved now (network)."""
        saved = None if refresh else self.pinned()
        if saved is not None:
            return saved
        self.log(f"resolving Debian {SUITE} {ARCH} packages (private apt in {self.apt.root})")
        self.apt.update()
        resolved = Resolution(suite=SUITE, mirror=self.apt.mirror,
                              requested=requested_packages(),
                              userland=self.apt.resolve(USERLAND_PACKAGES),
                              kernel=kernel_debs(self.apt.resolve(KERNEL_PACKAGES)))
        path = self.layout.resolution
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(resolved.to_json(), indent=1) + "\n")
        return resolved

    def debs(self, debs: Sequence[DebFile]) -> list[Path]:
        """The files of ``debs``, downloaded (and checked) unless cached."""
        self.apt.download(debs)
        return [self.apt.archives / deb.filename for deb in debs]

    def wheel(self, wheel: PinnedWheel) -> Path:
        """The file of ``wheel``, downloaded with pip (hash required) unless cached."""
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
