"""The system tools the tool needs on the machine it runs on, installed when possible.

A CI machine starts bare. Running as root, the tool installs what is missing
with ``apt-get install -y --no-install-recommends`` (non-interactive, no
stdin); otherwise it stops and prints the exact command to run. It never
touches a tool that is already there.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from arm64host.errors import HostToolMissing

#: How long installing system packages may take.
INSTALL_TIMEOUT_S: Final = 1200.0


@dataclass(frozen=True)
class HostTool:
    """A command and the Debian package that provides it."""

    command: str
    package: str


QEMU: Final = HostTool("qemu-system-aarch64", "qemu-system-arm")
#: Always present on Debian (apt and dpkg are essential); checked so that a
#: non-Debian machine gets a clear message instead of a traceback.
APT_GET: Final = HostTool("apt-get", "apt")
DPKG_DEB: Final = HostTool("dpkg-deb", "dpkg")

#: What building the image needs; running it in emulation needs :data:`QEMU` too.
BUILD_TOOLS: Final = (APT_GET, DPKG_DEB)


def missing_tools(tools: Sequence[HostTool],
                  which: Callable[[str], str | None] = shutil.which) -> list[HostTool]:
    """The tools whose command is not on ``PATH``."""
    return [tool for tool in tools if which(tool.command) is None]


def install_command(packages: Sequence[str]) -> list[str]:
    """The apt command that installs ``packages``."""
    return ["apt-get", "install", "-y", "--no-install-recommends", *packages]


def ensure_tools(tools: Sequence[HostTool], log: Callable[[str], None]) -> None:
    """Make every command of ``tools`` available, installing packages as root."""
    missing = missing_tools(tools)
    if not missing:
        return
    packages = sorted({tool.package for tool in missing})
    names = ", ".join(tool.command for tool in missing)
    if os.geteuid() != 0:
        raise HostToolMissing(
            f"{names} not found; install with: sudo {' '.join(install_command(packages))}")
    if shutil.which("apt-get") is None:
        raise HostToolMissing(f"{names} not found and this machine has no apt-get to install "
                              f"{', '.join(packages)} (a Debian or Ubuntu host is needed)")
    log(f"installing {', '.join(packages)} (for {names})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], install_command(packages)):
        try:
            done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise HostToolMissing(f"{' '.join(command)} took over {INSTALL_TIMEOUT_S:.0f} s") \
                from exc
        if done.returncode != 0:
            raise HostToolMissing(f"{' '.join(command)} failed (exit {done.returncode}):\n"
                                  f"{done.stderr.strip()}")
    still = missing_tools(tools)
    if still:
        raise HostToolMissing(f"installed {', '.join(packages)} but "
                              f"{', '.join(t.command for t in still)} is still missing")


def kvm_usable(path: str = "/dev/kvm") -> bool:
    """Whether ``path`` exists and this process may open it for reading and writing."""
    return os.path.exists(path) and os.access(path, os.R_OK | os.W_OK)


def host_machine() -> str:
    """This machine's architecture as ``uname -m`` says it."""
    return platform.machine()
