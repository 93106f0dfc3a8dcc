"""The command line: ``build``, ``run``, ``paths``, ``shell``, ``linux-demo``.

``python3 tools/arm64host/run.py run [--cpus N] [--memory M] [--timeout S]
[--env K=V]... -- CMD ARGS...`` exits with the command's status; a run that
could not finish (panic, timeout, init failure) exits with
:data:`TOOL_FAILURE` after printing why and the last console lines.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from arm64host.dists import DEFAULT_DISTS
from arm64host.errors import Arm64HostError
from arm64host.guest import DEFAULT_BOOT_TIMEOUT_S, DEFAULT_TIMEOUT_S
from arm64host.l2files import l2_environment
from arm64host.qemu import DEFAULT_CPUS, DEFAULT_MEMORY_MIB
from arm64host.runner import PROJECT_ROOT, Arm64Host, RunRequest

#: Exit status of the tool when it could not run the command to its end
#: (the convention of ``docker run`` and ``git bisect run``).
TOOL_FAILURE: Final = 125
#: What ``shell`` runs: busybox sh with the console as its controlling terminal.
SHELL_COMMAND: Final = ("setsid", "cttyhack", "sh", "-l")
#: What ``linux-demo`` runs inside: build vcpuhp's Linux test userland from the L2 busybox
#: and evdev, then ``vcpuhp demo --linux`` with the L2 kernel (extra arguments follow).
LINUX_DEMO_SCRIPT: Final = (
    'python3 -m vcpuhp.testing.linux_userland --busybox "$VCPUHP_TEST_BUSYBOX" '
    '--module "$VCPUHP_TEST_EVDEV" -o /tmp/vcpuhp-userland.cpio >/dev/null && '
    'exec python3 -m vcpuhp demo --linux "$VCPUHP_TEST_KERNEL" /tmp/vcpuhp-userland.cpio "$@"'
)


def linux_demo_command(extra: Sequence[str]) -> list[str]:
    """The command ``linux-demo`` runs, with ``extra`` arguments for ``vcpuhp demo``."""
    return ["sh", "-c", LINUX_DEMO_SCRIPT, "linux-demo", *extra]


def parse_memory(text: str) -> int:
    """A memory size in MiB from ``3072``, ``3072M`` or ``3G``."""
    value = text.strip().upper()
    scale = 1
    if value.endswith("G"):
        scale, value = 1024, value[:-1]
    elif value.endswith("M"):
        value = value[:-1]
    try:
        mib = int(value) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad memory size {text!r}: give MiB (3072), or a number with M or G (3G)") from None
    return mib


def parse_env(items: Sequence[str]) -> dict[str, str]:
    """``K=V`` pairs; a bare ``K`` takes ``K``'s value from this process's environment."""
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or not key.replace("_", "a").isalnum():
            raise Arm64HostError(f"bad --env {item!r}: expected NAME=VALUE or NAME")
        if not sep:
            if key not in os.environ:
                raise Arm64HostError(f"--env {key}: {key} is not set here")
            value = os.environ[key]
        env[key] = value
    return env


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arm64host", description="Build and run the project's emulated arm64 KVM host "
        "(Debian trixie arm64 under qemu-system-aarch64).")
    parser.add_argument("--cache", type=Path, help="cache directory (default: "
                        "$VCPUHP_ARM64HOST_CACHE or ~/.cache/vcpuhp/arm64host)")
    parser.add_argument("--mode", default="auto", choices=["auto", "emulated", "direct"],
                        help="auto: run directly on an arm64 host with /dev/kvm, else emulate")
    sub = parser.add_subparsers(dest="action", required=True)
    build = sub.add_parser("build", help="build the image (if needed) and print where it is")
    build.add_argument("--refresh", action="store_true",
                       help="resolve the packages again against a fresh index")
    paths = sub.add_parser("paths", help="the L2 guest files (Debian arm64 kernel, busybox) "
                           "on this machine, fetched if needed; no QEMU needed")
    paths.add_argument("--format", choices=["env", "json"], default="env")
    for name, helptext in (("run", "run a command inside; exit with its status"),
                           ("shell", "boot with a shell on this terminal (debugging)"),
                           ("linux-demo", "the seed hotplug session with Debian's Linux as "
                            "the guest of vcpuhp's kvm backend inside (vcpuhp demo --linux)")):
        command = sub.add_parser(name, help=helptext)
        command.add_argument("--cpus", type=int, default=DEFAULT_CPUS)
        command.add_argument("--memory", type=parse_memory, default=DEFAULT_MEMORY_MIB,
                             help="guest RAM: MiB, or with M/G (default %(default)s MiB)")
        command.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                             help="seconds for the whole run (default %(default)s)")
        command.add_argument("--boot-timeout", type=float, default=DEFAULT_BOOT_TIMEOUT_S,
                             help="seconds until the command starts (default %(default)s)")
        command.add_argument("--env", action="append", default=[], metavar="K=V",
                             help="set K in the command's environment (bare K: copy it)")
        command.add_argument("--dist", action="append", metavar="DIR",
                             help="a distribution directory of the checkout to make "
                             f"importable (default: {', '.join(DEFAULT_DISTS)})")
        command.add_argument("--project", type=Path, default=PROJECT_ROOT,
                             help="the checkout to share (default: this one)")
        if name == "run":
            command.add_argument("argv", nargs=argparse.REMAINDER,
                                 help="-- CMD ARGS...: the command")
        if name == "linux-demo":
            command.add_argument("extra", nargs=argparse.REMAINDER,
                                 help="-- ARGS...: more 'vcpuhp demo' options (--cycles 3)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        host = Arm64Host(args.cache, mode=args.mode)
        if args.action == "build":
            image = host.image(refresh=args.refresh, console=sys.stdout)
            print(image.directory)
            return 0
        if args.action == "paths":
            l2 = host.l2_files()
            files = {"ARM64HOST_L2_DIR": str(l2.directory),
                     **l2_environment(l2.directory)}
            if args.format == "json":
                print(json.dumps(files, indent=1))
            else:
                for key, value in files.items():
                    print(f"{key}={shlex.quote(value)}")
            return 0
        if args.action == "linux-demo":
            extra = list(args.extra)
            argv = linux_demo_command(extra[1:] if extra[:1] == ["--"] else extra)
        else:
            argv = _command(getattr(args, "argv", SHELL_COMMAND))
        request = RunRequest(argv=argv,
                             env=parse_env(args.env), cwd=Path.cwd(), cpus=args.cpus,
                             memory_mib=args.memory, timeout=args.timeout,
                             boot_timeout=args.boot_timeout, project=args.project,
                             dists=args.dist or DEFAULT_DISTS)
        if args.action == "shell":
            return host.shell(request)
        result = host.run(request)
        host.log(f"exit status {result.exit_status} ({result.mode.value}; boot "
                 f"{result.boot_seconds:.1f} s, command {result.command_seconds:.1f} s, "
                 f"total {result.total_seconds:.1f} s)")
        return result.exit_status
    except Arm64HostError as exc:
        print(f"[arm64host] error: {exc}", file=sys.stderr, flush=True)
        return TOOL_FAILURE
    except KeyboardInterrupt:
        print("[arm64host] interrupted; QEMU stopped", file=sys.stderr, flush=True)
        return 130


def _command(argv: Sequence[str]) -> list[str]:
    command = list(argv)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise Arm64HostError("no command: give it after --, e.g. run -- python3 -m pytest")
    return command
