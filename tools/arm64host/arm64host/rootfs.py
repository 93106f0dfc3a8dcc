"""The emulated host's root file system, staged in a directory from Debian packages.

Packages are unpacked with ``dpkg-deb -x``: no maintainer script runs, so the
few files a running system needs beyond package contents are written here
(``/init``, accounts, host names, the merged-``/usr`` links that Debian's
``base-files`` would make). Documentation, manual pages and translations are
left out; they only cost initramfs size.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from arm64host.errors import BuildError
from arm64host.guestinit import GUEST_L2_DIR, GUEST_PYC_PREFIX, INIT_SCRIPT

PRUNED: Final = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
                 "usr/share/lintian", "usr/share/bug", "usr/share/bash-completion")
MERGED_USR: Final = ("bin", "sbin", "lib")
DIRECTORIES: Final = ("proc", "sys", "dev", "tmp", "run", "root", "mnt",
                      GUEST_PYC_PREFIX.lstrip("/"), GUEST_L2_DIR.lstrip("/"))
ETC_FILES: Final = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/hosts": "127.0.0.1\tlocalhost arm64host\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files\n",
    "etc/hostname": "arm64host\n",
}
DPKG_TIMEOUT_S: Final = 600.0


def unpack_deb(deb: Path, target: Path) -> None:
    """Unpack a package's files into ``target`` (``dpkg-deb -x``; no scripts run)."""
    try:
        done = subprocess.run(["dpkg-deb", "-x", str(deb), str(target)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=DPKG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"dpkg-deb -x {deb} took over {DPKG_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        raise BuildError(f"dpkg-deb -x {deb} failed: {done.stderr.strip()}")


def merge_usr(root: Path) -> None:
    """Make ``/bin``, ``/sbin``, ``/lib`` links into ``/usr`` (trixie is merged-/usr).

    A package that still ships files under the top-level directory has them
    moved into ``/usr``; the same path in both places is an error.
    """
    for name in MERGED_USR:
        top, usr = root / name, root / "usr" / name
        usr.mkdir(parents=True, exist_ok=True)
        if top.is_symlink():
            continue
        if top.is_dir():
            for entry in sorted(top.iterdir()):
                destination = usr / entry.name
                if destination.exists() or destination.is_symlink():
                    if entry.is_dir() and not entry.is_symlink() and destination.is_dir():
                        _merge_dir(entry, destination)
                        continue
                    raise BuildError(f"/{name}/{entry.name} and /usr/{name}/{entry.name} "
                                     "both exist in the unpacked packages")
                entry.rename(destination)
            shutil.rmtree(top)
        top.symlink_to(f"usr/{name}")


def _merge_dir(source: Path, destination: Path) -> None:
    for entry in sorted(source.iterdir()):
        target = destination / entry.name
        if target.exists() or target.is_symlink():
            if entry.is_dir() and target.is_dir() and not target.is_symlink():
                _merge_dir(entry, target)
                continue
            raise BuildError(f"{entry} would overwrite {target}")
        entry.rename(target)


def prune(root: Path, paths: Iterable[str] = PRUNED) -> None:
    """Remove documentation and other files the emulated host never reads."""
    for relative in paths:
        shutil.rmtree(root / relative, ignore_errors=True)


def python_name(root: Path) -> str:
    """The versioned interpreter name ``/usr/bin/python3`` points to (``python3.13``)."""
    link = root / "usr" / "bin" / "python3"
    if not link.is_symlink():
        raise BuildError(f"{link} is not the python3 link of Debian's python3 package")
    return Path(os.readlink(link)).name


def install_wheel(wheel: Path, root: Path, python: str) -> None:
    """Unpack a pure-Python wheel into the image's ``/usr/local`` site directory."""
    site = root / "usr" / "local" / "lib" / python / "dist-packages"
    site.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.startswith("/") or ".." in Path(member).parts:
                raise BuildError(f"{wheel}: unsafe member name {member!r}")
        archive.extractall(site)


def add_system_files(root: Path) -> None:
    """``/init``, the account and host-name files, and the mount-point directories."""
    for relative in DIRECTORIES:
        (root / relative).mkdir(parents=True, exist_ok=True)
    for relative, text in ETC_FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    init = root / "init"
    init.write_text(INIT_SCRIPT)
    init.chmod(0o755)


def install_modules(root: Path, modules: Iterable[tuple[str, bytes]], directory: str) -> None:
    """Write uncompressed modules and ``modules.order`` (load order) under ``directory``."""
    target = root / directory.lstrip("/")
    target.mkdir(parents=True, exist_ok=True)
    names = []
    for name, elf in modules:
        (target / f"{name}.ko").write_bytes(elf)
        names.append(name)
    (target / "modules.order").write_text("".join(f"{name}\n" for name in names))
