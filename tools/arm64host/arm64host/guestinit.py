"""What runs inside the emulated host: the image's ``/init`` and the per-run scripts.

The image is an initramfs; the kernel runs ``/init`` (busybox sh) as PID 1. It
mounts the kernel file systems, loads the 9p modules, mounts the *run share*
(a host directory made for this run) and sources its ``setup.sh`` (which
mounts the other shares and enters the working directory), prints the READY
marker, runs ``command.sh`` (the command under ``env -i`` with exactly the
run's environment), prints the kernel's last log lines if a signal killed the
command (a crash), prints the EXIT marker with its status, and powers off.
Any failure before the command prints a FAIL marker and powers off, so the
host never waits for a command that will not come. The marker nonce comes
from the kernel command line (``arm64host.nonce=``), known before any share.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from arm64host.console import MARKER_PREFIX

RUN_SHARE_TAG: Final = "arm64host"
GUEST_RUN_DIR: Final = "/run/arm64host"
GUEST_MODULES_DIR: Final = "/usr/lib/arm64host/modules"
GUEST_PYC_PREFIX: Final = "/var/cache/arm64host/pyc"
GUEST_L2_DIR: Final = "/opt/vcpuhp/l2"
GUEST_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/busybox"
#: 9p mount options, measured under TCG: a 128 KiB msize (each request costs
#: a buffer of that size; 512000 made imports 3-4x slower) and ``cache=loose``
#: (dentries, attributes and data cached in the guest: imports from the
#: checkout 3x faster; the host does not change the shared trees during a
#: run, and the init syncs before powering off).
NINEP_OPTIONS: Final = "trans=virtio,version=9p2000.L,msize=131072,cache=loose"

INIT_SCRIPT: Final = f"""#!/usr/bin/busybox sh
# /init of the arm64host image (tools/arm64host/README.md explains it).
bb=/usr/bin/busybox
$bb mount -t proc proc /proc
nonce=$($bb sed -n 's/.*arm64host[.]nonce=\\([0-9a-f]*\\).*/\\1/p' /proc/cmdline)
interactive=$($bb sed -n 's/.*arm64host[.]interactive=\\([01]\\).*/\\1/p' /proc/cmdline)
fail() {{
    echo
    echo "{MARKER_PREFIX}$nonce FAIL $*"
    $bb sync
    $bb poweroff -f
    exit 1
}}
$bb mkdir -p /opt/busybox && $bb --install -s /opt/busybox || fail "busybox --install"
export PATH={GUEST_PATH}
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "mount /dev"
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts || fail "mount /dev/pts"
mount -t tmpfs -o mode=1777 tmpfs /dev/shm || fail "mount /dev/shm"
mount -t tmpfs -o mode=1777 tmpfs /tmp || fail "mount /tmp"
mount -t tmpfs -o mode=755 tmpfs /run || fail "mount /run"
ip link set lo up || fail "loopback up"
hostname arm64host
# Have the kernel log every fault that kills a process (address, instruction, program):
# the report after a crashed command shows these lines.
echo 1 > /proc/sys/debug/exception-trace || fail "debug.exception-trace"
while read -r module; do
    insmod "{GUEST_MODULES_DIR}/$module.ko" || fail "insmod $module"
done < {GUEST_MODULES_DIR}/modules.order
share() {{
    mkdir -p "$2" && mount -t 9p -o "{NINEP_OPTIONS}$3" "$1" "$2" \\
        || fail "mount of 9p share $1 at $2"
}}
share {RUN_SHARE_TAG} {GUEST_RUN_DIR}
. {GUEST_RUN_DIR}/setup.sh
echo
echo "{MARKER_PREFIX}$nonce READY"
if [ "$interactive" = 1 ]; then
    sh {GUEST_RUN_DIR}/command.sh
else
    sh {GUEST_RUN_DIR}/command.sh </dev/null
fi
status=$?
if [ "$status" -gt 128 ]; then
    # Killed by a signal (a crash): what the kernel logged about it names the faulting
    # address, the instruction and the library, which the command itself cannot print.
    echo "[arm64host] the command was killed by signal $((status - 128)); the kernel's last lines:"
    dmesg | tail -n 40
fi
kill -9 -1 2>/dev/null
cd /
sync
echo
echo "{MARKER_PREFIX}$nonce EXIT $status"
poweroff -f
"""


@dataclass(frozen=True)
class GuestShare:
    """A 9p share the run mounts: its tag, its guest mount point, read-only or not."""

    tag: str
    guest_path: str
    readonly: bool = False


def setup_script(shares: Sequence[GuestShare], cwd: str) -> str:
    """``setup.sh``: mount ``shares`` (in order), check ``cwd`` exists; sourced by ``/init``.

    The init itself stays in ``/`` so that it holds no share busy.
    """
    lines = ["# sourced by /init: mounts this run's shares, checks its directory"]
    for share in shares:
        options = ",ro" if share.readonly else ""
        lines.append(f"share {shlex.quote(share.tag)} {shlex.quote(share.guest_path)} "
                     f"{shlex.quote(options)}")
    lines.append(f"[ -d {shlex.quote(cwd)} ] || fail {shlex.quote(f'no directory {cwd}')}")
    return "\n".join(lines) + "\n"


def command_script(argv: Sequence[str], env: Mapping[str, str], cwd: str) -> str:
    """``command.sh``: run ``argv`` in ``cwd`` with exactly ``env`` (``env -i``)."""
    if not argv:
        raise ValueError("no command to run")
    assignments = " ".join(shlex.quote(f"{key}={value}") for key, value in sorted(env.items()))
    command = " ".join(shlex.quote(arg) for arg in argv)
    return f"cd {shlex.quote(cwd)} || exit 125\nexec env -i {assignments} {command}\n"
