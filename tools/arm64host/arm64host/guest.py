"""Boot the emulated host once, pass its console on, and take the command's exit status.

Every wait is bounded: the boot (QEMU start to the READY marker), the whole
run, the grace period after a kernel panic and the power-off after the EXIT
marker. QEMU is killed on every path that does not end with its own exit.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from arm64host.console import ConsoleParser, Exited, InitFailed, Panicked, Ready
from arm64host.errors import GuestFailure
from arm64host.qemu import DEFAULT_CPUS, DEFAULT_MEMORY_MIB, HostShare, qemu_argv

DEFAULT_TIMEOUT_S: Final = 3600.0
DEFAULT_BOOT_TIMEOUT_S: Final = 300.0
#: After the EXIT marker the init syncs and powers off; QEMU must be gone by then.
POWEROFF_GRACE_S: Final = 60.0
#: After a panic message, the rest of the panic report is collected this long.
PANIC_GRACE_S: Final = 5.0
_KILL_WAIT_S: Final = 30.0
_READ_SIZE: Final = 65536
BASE_APPEND: Final = "console=ttyAMA0 quiet panic=-1"


@dataclass(frozen=True)
class BootSpec:
    """What to boot: kernel, initramfs, the machine's size and the shares."""

    kernel: Path
    initrd: Path
    shares: Sequence[HostShare]
    cpus: int = DEFAULT_CPUS
    memory_mib: int = DEFAULT_MEMORY_MIB


@dataclass(frozen=True)
class GuestRun:
    """The outcome of a run whose command finished."""

    exit_status: int
    #: QEMU started -> READY marker (kernel boot, init, shares).
    boot_seconds: float
    #: READY -> EXIT marker (the command itself).
    command_seconds: float
    #: QEMU started -> QEMU gone.
    total_seconds: float


def kernel_append(nonce: str, interactive: bool = False) -> str:
    """The kernel command line of a run with marker ``nonce``."""
    extra = " arm64host.interactive=1" if interactive else ""
    return f"{BASE_APPEND} arm64host.nonce={nonce}{extra}"


def boot_and_run(spec: BootSpec, nonce: str, output: TextIO | None, *,
                 timeout: float = DEFAULT_TIMEOUT_S,
                 boot_timeout: float = DEFAULT_BOOT_TIMEOUT_S,
                 qemu_binary: str = "qemu-system-aarch64") -> GuestRun:
    """Boot ``spec``, stream the console to ``output``, return the command's outcome.

    The run share (prepared by the caller) must be among ``spec.shares``.
    Raises :class:`GuestFailure` (with the last console lines) when the
    command does not finish: init failure, kernel panic, QEMU exiting early,
    a boot longer than ``boot_timeout`` or a run longer than ``timeout``.
    """
    argv = qemu_argv(kernel=spec.kernel, initrd=spec.initrd, append=kernel_append(nonce),
                     cpus=spec.cpus, memory_mib=spec.memory_mib, shares=spec.shares,
                     binary=qemu_binary)
    parser = ConsoleParser(nonce)
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        return _watch(proc, parser, output, start, timeout, boot_timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=_KILL_WAIT_S)
        if proc.stdout is not None:
            proc.stdout.close()


def _watch(proc: subprocess.Popen[bytes], parser: ConsoleParser, output: TextIO | None,
           start: float, timeout: float, boot_timeout: float) -> GuestRun:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    ready_at: float | None = None
    exited: Exited | None = None
    exited_at = 0.0
    failure: str | None = None
    stop_at: float | None = None  # set by a failure: when to stop collecting console output
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        eof = False
        while not eof:
            now = time.monotonic()
            limit = start + timeout if ready_at is not None else start + min(boot_timeout,
                                                                               timeout)
            if exited is not None:
                limit = exited_at + POWEROFF_GRACE_S
            if stop_at is not None:
                limit = min(limit, stop_at)
            if now >= limit:
                break
            if not selector.select(timeout=min(limit - now, 1.0)):
                continue
            data = os.read(fd, _READ_SIZE)
            feed = parser.feed(data) if data else parser.finish()
            eof = not data
            if output is not None and feed.output:
                output.write(feed.output)
                output.flush()
            for event in feed.events:
                if isinstance(event, Ready):
                    ready_at = time.monotonic()
                elif isinstance(event, Exited):
                    exited, exited_at = event, time.monotonic()
                elif isinstance(event, InitFailed):
                    failure = f"the init failed before the command: {event.reason}"
                    stop_at = time.monotonic()
                elif isinstance(event, Panicked) and stop_at is None:
                    failure = f"the kernel panicked: {event.line}"
                    stop_at = time.monotonic() + PANIC_GRACE_S
    end = time.monotonic()
    tail = list(parser.tail)
    if exited is not None and ready_at is not None:
        if not eof:
            proc.kill()
        return GuestRun(exit_status=exited.status, boot_seconds=ready_at - start,
                        command_seconds=exited_at - ready_at, total_seconds=end - start)
    if failure is not None:
        raise GuestFailure(failure, tail)
    if eof:
        code = proc.wait(timeout=_KILL_WAIT_S)
        raise GuestFailure(f"QEMU exited (status {code}) before the command finished "
                           "(no EXIT marker on the console)", tail)
    if ready_at is None:
        raise GuestFailure(f"the emulated host did not reach the command within "
                           f"{min(boot_timeout, timeout):.0f} s; QEMU killed", tail)
    raise GuestFailure(f"the command did not finish within {timeout:.0f} s; QEMU killed", tail)
