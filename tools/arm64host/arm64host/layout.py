"""Where the tool keeps its downloads, images and caches (outside any git checkout).

``$VCPUHP_ARM64HOST_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/vcpuhp/arm64host``::

    apt/                     the private apt (config, index, downloaded .debs)
    pypi/                    wheels from PyPI (qemu.qmp, fdt)
    resolution.json          the last resolved package closure (pins the versions)
    images/<key>/            one built image: Image, initrd.cpio, manifest.json
    l2/<key>/                guests' files: vmlinuz, Image, busybox, evdev.ko
    pyc/<checkout-hash>/     bytecode of a checkout's sources compiled inside the host
    build.lock               held while an image is being built
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from arm64host.errors import BuildError

#: How long a build waits for another process's build of the same cache.
LOCK_TIMEOUT_S: Final = 3600.0


def default_cache_root() -> Path:
    """The cache root for this user (see the module docstring)."""
    override = os.environ.get("VCPUHP_ARM64HOST_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "vcpuhp" / "arm64host"


@dataclass(frozen=True)
class CacheLayout:
    """The paths under one cache root."""

    root: Path

    @property
    def apt(self) -> Path:
        """The private apt's directory."""
        return self.root / "apt"

    @property
    def pypi(self) -> Path:
        """Downloaded wheels."""
        return self.root / "pypi"

    @property
    def resolution(self) -> Path:
        """The pinned package closure."""
        return self.root / "resolution.json"

    @property
    def images(self) -> Path:
        """Built images, one directory per cache key."""
        return self.root / "images"

    @property
    def lock(self) -> Path:
        """The build lock file."""
        return self.root / "build.lock"

    def image(self, key: str) -> Path:
        """The directory of the image with cache key ``key``."""
        return self.images / key

    def l2(self, key: str) -> Path:
        """The directory of the L2 files with cache key ``key``."""
        return self.root / "l2" / key

    def pyc_for(self, checkout: Path) -> Path:
        """The bytecode cache of one checkout (keyed by its absolute path)."""
        digest = hashlib.sha256(str(checkout.resolve()).encode()).hexdigest()[:16]
        return self.root / "pyc" / digest

    @contextlib.contextmanager
    def exclusive(self, log: Callable[[str], None],
                  timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        """Hold the cache's build lock (waiting at most ``timeout`` s) and tidy up.

        Whoever holds the lock may change the cache; partial directories left
        by a process that died while holding it are removed first.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        with self.lock.open("a") as handle:
            waited = False
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise BuildError(f"another build held {self.lock} for over "
                                         f"{timeout:.0f} s") from exc
                    if not waited:
                        log(f"waiting for another build to release {self.lock}")
                        waited = True
                    time.sleep(1.0)
            try:
                for partial in [*self.root.glob("*/*.partial-*"), *self.root.glob("*.partial-*")]:
                    shutil.rmtree(partial, ignore_errors=True)
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
