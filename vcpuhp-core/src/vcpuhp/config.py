"""Machine configuration: what ``vcpuhp run`` options and ``VirtMachine(...)`` take."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from vcpuhp import memmap
from vcpuhp.errors import ConfigError
from vcpuhp.plugin_settings import PluginSettings
from vcpuhp.topology import SmpConfig

#: QEMU arm CPU models a ``virt`` machine here accepts (QOM type: ``<model>-arm-cpu``).
CPU_MODELS: Final = ("cortex-a57", "cortex-a72", "max", "host")
DEFAULT_MEMORY: Final = 256 * memmap.MiB
_SIZE_RE: Final = re.compile(r"^\s*(\d+)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_UNITS: Final = {"": memmap.MiB, "K": memmap.KiB, "M": memmap.MiB, "G": memmap.GiB,
                 "T": 1024 * memmap.GiB}


def cpu_qom_type(model: str) -> str:
    """The QOM type name of CPU ``model`` (``max`` -> ``max-arm-cpu``)."""
    return f"{model}-arm-cpu"


def parse_memory_size(text: str) -> int:
    """Parse ``-m`` sizes QEMU-style: a plain number is MiB; K/M/G/T suffixes."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ConfigError(f"-m: {text!r} is not a size; use e.g. 256M or 1G")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


@dataclass(frozen=True)
class MachineConfig:
    """Everything needed to build a machine."""

    smp: SmpConfig
    cpu_model: str = "max"
    accel: str = "null"
    memory_size: int = DEFAULT_MEMORY
    allow_cold_unplug: bool = False
    """Policy: may ``device_del`` remove CPUs enabled at boot? (The seeds explain why not.)"""
    kernel: Path | None = None
    """Guest image for executing backends: an arm64 Linux ``Image`` (booted with ACPI
    and a minimal EFI environment), or an ELF / raw image (the bundled guest's
    convention); ``None`` means the bundled guest."""
    initrd: Path | None = None
    """Initial ramdisk for a Linux kernel."""
    guest_cmdline: str = ""
    backend_options: Mapping[str, str] = field(default_factory=dict)
    plugins: PluginSettings = field(default_factory=PluginSettings)
    """Which installed plugins this machine loads, with their options."""

    def __post_init__(self) -> None:
        if self.cpu_model not in CPU_MODELS:
            raise ConfigError(
                f"CPU model {self.cpu_model!r} is not supported; valid: {', '.join(CPU_MODELS)}"
            )
        max_ram = memmap.GICR_REGION_HIGH.base - memmap.RAM_BASE
        if not 16 * memmap.MiB <= self.memory_size <= max_ram:
            raise ConfigError(
                f"memory size {self.memory_size} is out of range "
                f"{16 * memmap.MiB}-{max_ram} bytes (16M-255G)"
            )
        if self.memory_size % (64 * memmap.KiB):
            raise ConfigError(f"memory size {self.memory_size} must be a multiple of 64K")

    @classmethod
    def build(
        cls,
        smp: str | SmpConfig = "1",
        *,
        cpu: str = "max",
        accel: str = "null",
        memory: str | int = DEFAULT_MEMORY,
        **kwargs: object,
    ) -> MachineConfig:
        """Convenience constructor taking QEMU-style strings."""
        smp_config = smp if isinstance(smp, SmpConfig) else SmpConfig.parse(smp)
        size = parse_memory_size(memory) if isinstance(memory, str) else memory
        return cls(smp_config, cpu, accel, size, **kwargs)  # type: ignore[arg-type]

    @property
    def cpu_type(self) -> str:
        """QOM type of this machine's CPUs."""
        return cpu_qom_type(self.cpu_model)
