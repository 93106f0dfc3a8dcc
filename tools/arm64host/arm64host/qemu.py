"""The QEMU command line of the emulated arm64 KVM host.

``-M virt,virtualization=on,gic-version=3`` gives the guest EL2 and a GICv3,
which KVM on arm64 needs (the kernel then reports "kvm: VHE mode initialized
successfully"); ``-cpu max,pauth-impdef=on`` has every feature TCG emulates
but computes pointer-authentication codes with a cheap implementation-defined
function instead of QARMA (about 3x faster boots and Python); ``-accel
tcg,thread=multi`` runs each vCPU on its own host thread. Shares are virtio
9p devices on PCI (``virtio_pci`` is built into Debian's kernel, the 9p
drivers are modules the init loads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

QEMU_BINARY: Final = "qemu-system-aarch64"
MACHINE: Final = "virt,virtualization=on,gic-version=3"
CPU: Final = "max,pauth-impdef=on"
ACCEL: Final = "tcg,thread=multi"
DEFAULT_CPUS: Final = 2
DEFAULT_MEMORY_MIB: Final = 3072


@dataclass(frozen=True)
class HostShare:
    """A host directory exported to the guest under ``tag``."""

    tag: str
    host_path: Path
    readonly: bool = False


def _option_value(text: str) -> str:
    """Escape ``text`` for a QEMU ``key=value,...`` option (a comma is written twice)."""
    return text.replace(",", ",,")


def qemu_argv(*, kernel: Path, initrd: Path, append: str, cpus: int = DEFAULT_CPUS,
              memory_mib: int = DEFAULT_MEMORY_MIB, shares: Sequence[HostShare] = (),
              interactive: bool = False, binary: str = QEMU_BINARY) -> list[str]:
    """The argument vector that boots ``kernel`` + ``initrd`` with ``shares``.

    The serial console is QEMU's stdio; with ``interactive`` it is multiplexed
    with the monitor (Ctrl-A x quits).
    """
    if cpus < 1:
        raise ValueError(f"cpus must be at least 1, not {cpus}")
    if memory_mib < 512:
        raise ValueError(f"memory must be at least 512 MiB, not {memory_mib}")
    argv = [
        binary, "-M", MACHINE, "-cpu", CPU, "-accel", ACCEL,
        "-smp", str(cpus), "-m", f"{memory_mib}M",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-serial", "mon:stdio" if interactive else "stdio",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", append,
    ]
    for index, share in enumerate(shares):
        fsdev = f"fs{index}"
        options = (f"local,id={fsdev},path={_option_value(str(share.host_path))},"
                   "security_model=none")
        if share.readonly:
            options += ",readonly=on"
        argv += ["-fsdev", options,
                 "-device", f"virtio-9p-pci,fsdev={fsdev},mount_tag={_option_value(share.tag)}"]
    return argv
