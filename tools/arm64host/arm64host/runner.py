"""Run a command in the emulated arm64 KVM host (or directly on an arm64 KVM host).

A run gets a fresh *run directory* on the host, shared with the guest: the
generated ``setup.sh`` / ``command.sh`` and the ``.dist-info`` metadata of the
project's distributions. The checkout is shared read-write at its own
absolute path, so paths in tracebacks, pytest node ids and written artifacts
are the same on both sides. The guest's ``PYTHONPYCACHEPREFIX`` is the image's
precompiled bytecode, with the checkout's part of that tree mounted from a
per-checkout cache directory on the host, so the checkout's modules are
compiled once per machine and never written into the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TextIO

from arm64host import guestinit
from arm64host.console import new_nonce
from arm64host.direct import run_directly
from arm64host.dists import DEFAULT_DISTS, find_dists, write_metadata
from arm64host.errors import Arm64HostError, GuestFailure
from arm64host.guest import (
    DEFAULT_BOOT_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    BootSpec,
    GuestRun,
    boot_and_run,
    kernel_append,
)
from arm64host.hosttools import QEMU, ensure_tools, host_machine, kvm_usable
from arm64host.image import HostImage, ImageBuilder
from arm64host.l2files import L2Files, l2_environment
from arm64host.layout import CacheLayout, default_cache_root
from arm64host.mode import Mode, choose_mode
from arm64host.qemu import DEFAULT_CPUS, DEFAULT_MEMORY_MIB, HostShare, qemu_argv

#: The project checkout this tool lives in (tools/arm64host/arm64host/runner.py).
PROJECT_ROOT: Final = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class RunRequest:
    """A command to run and the machine to run it on."""

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    cpus: int = DEFAULT_CPUS
    memory_mib: int = DEFAULT_MEMORY_MIB
    timeout: float = DEFAULT_TIMEOUT_S
    boot_timeout: float = DEFAULT_BOOT_TIMEOUT_S
    project: Path = PROJECT_ROOT
    dists: Sequence[str] = DEFAULT_DISTS


@dataclass(frozen=True)
class RunResult:
    """The command's exit status and where the time went."""

    exit_status: int
    mode: Mode
    #: Seconds from starting QEMU to the command starting (0 when run directly).
    boot_seconds: float
    #: Seconds the command ran.
    command_seconds: float
    #: Seconds for the whole run, image preparation excluded.
    total_seconds: float


def _stderr_log(message: str) -> None:
    print(f"[arm64host] {message}", file=sys.stderr, flush=True)


class Arm64Host:
    """The emulated arm64 KVM host of this machine: its image and its runs.

    ``Arm64Host().run(RunRequest(["python3", "-m", "pytest", ...]))`` is the
    whole API; the image is built on first use and cached.
    """

    def __init__(self, cache_root: Path | None = None, *,
                 log: Callable[[str], None] = _stderr_log, mode: str = "auto") -> None:
        self.layout = CacheLayout(cache_root or default_cache_root())
        self.log = log
        self.mode = choose_mode(mode, host_machine(), kvm_usable())
        self._builder = ImageBuilder(self.layout, log, console=None)

    def image(self, refresh: bool = False, console: TextIO | None = None) -> HostImage:
        """The image, built (with its console shown on ``console``) if needed."""
        self._builder.console = console
        return self._builder.ensure(refresh)

    def l2_files(self, refresh: bool = False) -> L2Files:
        """The L2 guest files on this machine (fetched if needed; no QEMU involved)."""
        return self._builder.ensure_l2(refresh)

    def run(self, request: RunRequest, output: TextIO | None = sys.stdout) -> RunResult:
        """Run ``request``; the command's output goes to ``output`` as it comes.

        Returns the command's exit status; raises :class:`GuestFailure` when the
        command could not run to its end (see :func:`arm64host.guest.boot_and_run`).
        """
        if not request.argv:
            raise Arm64HostError("no command given")
        if self.mode is Mode.DIRECT:
            return self._run_direct(request, self.l2_files(), output)
        image = self.image(console=output)
        ensure_tools([QEMU], self.log)
        return self._run_emulated(request, image, output)

    def _run_direct(self, request: RunRequest, l2: L2Files,
                    output: TextIO | None) -> RunResult:
        env = {**os.environ, **l2_environment(l2.directory), **request.env}
        status, seconds = run_directly(request.argv, env, _cwd(request), request.timeout,
                                       output)
        return RunResult(exit_status=status, mode=Mode.DIRECT, boot_seconds=0.0,
                         command_seconds=seconds, total_seconds=seconds)

    def _run_emulated(self, request: RunRequest, image: HostImage,
                      output: TextIO | None) -> RunResult:
        if "=" in request.argv[0]:
            raise Arm64HostError(f"the command {request.argv[0]!r} contains '=': "
                                 "give a program name or path")
        project = request.project.resolve()
        cwd = _cwd(request)
        if not cwd.is_relative_to(project):
            cwd = project
        run_dir = Path(tempfile.mkdtemp(prefix="arm64host-run-"))
        try:
            spec, nonce = self._prepare(request, image, project, cwd, run_dir)
            run = boot_and_run(spec, nonce, output, timeout=request.timeout,
                               boot_timeout=request.boot_timeout)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        return _result(run)

    def _prepare(self, request: RunRequest, image: HostImage, project: Path, cwd: Path,
                 run_dir: Path) -> tuple[BootSpec, str]:
        dists = find_dists(project, request.dists)
        roots = write_metadata(dists, run_dir / "site")
        pyc_cache = self.layout.pyc_for(project)
        pyc_cache.mkdir(parents=True, exist_ok=True)
        guest_site = f"{guestinit.GUEST_RUN_DIR}/site"
        shares = [
            HostShare(guestinit.RUN_SHARE_TAG, run_dir),
            HostShare("project", project),
            HostShare("l2", image.l2.directory, readonly=True),
            HostShare("pyc", pyc_cache),
        ]
        guest_shares = [
            guestinit.GuestShare("project", str(project)),
            guestinit.GuestShare("l2", guestinit.GUEST_L2_DIR, readonly=True),
            guestinit.GuestShare("pyc", f"{guestinit.GUEST_PYC_PREFIX}{project}"),
        ]
        pythonpath = ":".join([guest_site, *(str(root) for root in roots)])
        env = {
            "PATH": guestinit.GUEST_PATH, "HOME": "/root", "USER": "root", "LANG": "C.UTF-8",
            "TERM": "dumb", "TMPDIR": "/tmp", "VCPUHP_ARM64HOST": "1",
            "PYTHONPYCACHEPREFIX": guestinit.GUEST_PYC_PREFIX,
            **l2_environment(guestinit.GUEST_L2_DIR),
            **request.env,
        }
        env["PYTHONPATH"] = ":".join(filter(None, [request.env.get("PYTHONPATH"), pythonpath]))
        (run_dir / "setup.sh").write_text(guestinit.setup_script(guest_shares, str(cwd)))
        (run_dir / "command.sh").write_text(guestinit.command_script(request.argv, env, str(cwd)))
        spec = BootSpec(kernel=image.kernel, initrd=image.initrd, shares=shares,
                        cpus=request.cpus, memory_mib=request.memory_mib)
        return spec, new_nonce()

    def shell(self, request: RunRequest) -> int:
        """Boot the host with a shell on this terminal (debugging aid); QEMU's exit status."""
        image = self.image(console=sys.stdout)
        ensure_tools([QEMU], self.log)
        project = request.project.resolve()
        run_dir = Path(tempfile.mkdtemp(prefix="arm64host-shell-"))
        try:
            spec, nonce = self._prepare(request, image, project, project, run_dir)
            argv = qemu_argv(kernel=spec.kernel, initrd=spec.initrd,
                             append=kernel_append(nonce, interactive=True),
                             cpus=spec.cpus, memory_mib=spec.memory_mib, shares=spec.shares,
                             interactive=True)
            self.log("Ctrl-A x quits QEMU; 'exit' powers the host off")
            try:
                return subprocess.run(argv, timeout=request.timeout, check=False).returncode
            except subprocess.TimeoutExpired as exc:
                raise GuestFailure(f"shell session longer than {request.timeout:.0f} s; "
                                   "QEMU killed") from exc
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)


def _cwd(request: RunRequest) -> Path:
    cwd = (request.cwd or Path.cwd()).resolve()
    if not cwd.is_dir():
        raise Arm64HostError(f"the working directory {cwd} does not exist")
    return cwd


def _result(run: GuestRun) -> RunResult:
    return RunResult(exit_status=run.exit_status, mode=Mode.EMULATED,
                     boot_seconds=run.boot_seconds, command_seconds=run.command_seconds,
                     total_seconds=run.total_seconds)
