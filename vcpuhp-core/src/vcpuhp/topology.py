"""CPU topology: ``-smp`` parsing with QEMU's rules, CPU slots and arch ids.

One :class:`CpuSlot` exists per *possible* CPU. Its arch id is the MPIDR
affinity value, computed from the slot's linear index the way QEMU's ``virt``
board does for GICv3 (16 CPUs per Aff1 group so every CPU stays reachable by
SGIs, whose target list covers Aff0 0-15):

* Aff0 = index % 16
* Aff1 = (index // 16) % 256
* Aff2 = index // 4096
* Aff3 = 0

The same value appears in the MADT GICC ``MPIDR`` field, ``_MAT``,
``GICR_TYPER[63:32]`` and what a vCPU reads from ``MPIDR_EL1``. The socket /
cluster / core / thread hierarchy itself reaches the guest through the PPTT.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from vcpuhp.errors import TopologyError

MAX_CPUS: Final = 512
"""The most CPUs a ``virt`` machine with GICv3 supports (QEMU's limit)."""

_SMP_KEYS: Final = ("cpus", "maxcpus", "sockets", "clusters", "cores", "threads")
_PROP_NAMES: Final = ("socket-id", "cluster-id", "core-id", "thread-id")


def mpidr_affinity(index: int) -> int:
    """The MPIDR affinity (arch id) of the CPU with linear index ``index``."""
    aff0 = index % 16
    aff1 = (index // 16) % 256
    aff2 = index // 4096
    return (aff2 << 16) | (aff1 << 8) | aff0


def affinity_fields(arch_id: int) -> tuple[int, int, int, int]:
    """Split an arch id into ``(aff3, aff2, aff1, aff0)``."""
    return ((arch_id >> 32) & 0xFF, (arch_id >> 16) & 0xFF, (arch_id >> 8) & 0xFF, arch_id & 0xFF)


@dataclass(frozen=True)
class SmpConfig:
    """A fully resolved ``-smp`` configuration (every value derived and checked)."""

    cpus: int
    maxcpus: int
    sockets: int
    clusters: int
    cores: int
    threads: int

    @classmethod
    def parse(cls, text: str) -> SmpConfig:
        """Parse an ``-smp`` string such as ``"cpus=2,maxcpus=8"`` or ``"4,sockets=2"``."""
        values: dict[str, int] = {}
        for position, item in enumerate(filter(None, (p.strip() for p in text.split(",")))):
            key, sep, raw = item.partition("=")
            if not sep:
                if position != 0:
                    raise TopologyError(
                        f"-smp: '{item}' needs a key; valid keys: {', '.join(_SMP_KEYS)}"
                    )
                key, raw = "cpus", item
            key = key.strip()
            if key not in _SMP_KEYS:
                raise TopologyError(
                    f"-smp: unknown parameter '{key}'; valid keys: {', '.join(_SMP_KEYS)}"
                )
            if key in values:
                raise TopologyError(f"-smp: '{key}' given more than once")
            try:
                values[key] = int(raw.strip(), 0)
            except ValueError:
                raise TopologyError(
                    f"-smp: {key}={raw!r} is not an integer"
                ) from None
        if not values:
            raise TopologyError("-smp: empty topology; give at least cpus=N")
        return cls.from_values(**values)

    @classmethod
    def from_values(
        cls,
        cpus: int | None = None,
        maxcpus: int | None = None,
        sockets: int | None = None,
        clusters: int | None = None,
        cores: int | None = None,
        threads: int | None = None,
    ) -> SmpConfig:
        """Resolve a topology from keyword values, deriving the omitted ones as QEMU does.

        QEMU (>= 6.2) prefers cores over sockets: an omitted ``cores`` absorbs
        what the other levels leave of ``maxcpus``.
        """
        given = {
            "cpus": cpus, "maxcpus": maxcpus, "sockets": sockets,
            "clusters": clusters, "cores": cores, "threads": threads,
        }
        for key, value in given.items():
            if value is not None and not isinstance(value, int):
                raise TopologyError(f"-smp: {key} must be an integer, not {value!r}")
            if value is not None and value <= 0:
                raise TopologyError(
                    f"-smp: {key}={value} is invalid; topology values must be greater than zero"
                )
        n_clusters = clusters or 1
        n_sockets, n_cores, n_threads = sockets or 0, cores or 0, threads or 0
        n_cpus, n_max = cpus or 0, maxcpus or 0
        if n_cpus == 0 and n_max == 0:
            n_sockets, n_cores, n_threads = n_sockets or 1, n_cores or 1, n_threads or 1
        else:
            n_max = n_max or n_cpus
            if n_cores == 0:
                n_sockets, n_threads = n_sockets or 1, n_threads or 1
                n_cores = n_max // (n_sockets * n_clusters * n_threads)
            elif n_sockets == 0:
                n_threads = n_threads or 1
                n_sockets = n_max // (n_clusters * n_cores * n_threads)
            if n_threads == 0:
                n_threads = n_max // (n_sockets * n_clusters * n_cores)
        product = n_sockets * n_clusters * n_cores * n_threads
        n_max = n_max or product
        n_cpus = n_cpus or n_max
        if product == 0 or product != n_max:
            raise TopologyError(
                f"-smp: sockets ({n_sockets}) * clusters ({n_clusters}) * cores ({n_cores}) "
                f"* threads ({n_threads}) = {product} must equal maxcpus ({n_max})"
            )
        if n_max < n_cpus:
            raise TopologyError(
                f"-smp: maxcpus ({n_max}) must be equal to or greater than cpus ({n_cpus})"
            )
        if n_max > MAX_CPUS:
            raise TopologyError(
                f"-smp: maxcpus={n_max} is out of range; the virt machine supports 1-{MAX_CPUS}"
            )
        return cls(n_cpus, n_max, n_sockets, n_clusters, n_cores, n_threads)

    def __str__(self) -> str:
        return (
            f"cpus={self.cpus},maxcpus={self.maxcpus},sockets={self.sockets},"
            f"clusters={self.clusters},cores={self.cores},threads={self.threads}"
        )


@dataclass(frozen=True)
class CpuSlot:
    """One possible CPU: its place in the topology and its arch id (MPIDR affinity)."""

    index: int
    socket_id: int
    cluster_id: int
    core_id: int
    thread_id: int
    arch_id: int

    def props(self) -> dict[str, int]:
        """The slot's properties in QMP's ``CpuInstanceProperties`` shape."""
        return {
            "socket-id": self.socket_id,
            "cluster-id": self.cluster_id,
            "core-id": self.core_id,
            "thread-id": self.thread_id,
        }

    @property
    def mpidr(self) -> int:
        """The value a vCPU reads from ``MPIDR_EL1`` (RES1 bit 31 set, U bit clear)."""
        return (1 << 31) | self.arch_id


class Topology:
    """The CPU slots of a machine, one per possible CPU, in index order."""

    def __init__(self, smp: SmpConfig) -> None:
        self.smp = smp
        slots = []
        for index in range(smp.maxcpus):
            thread = index % smp.threads
            core = (index // smp.threads) % smp.cores
            cluster = (index // (smp.threads * smp.cores)) % smp.clusters
            socket = index // (smp.threads * smp.cores * smp.clusters)
            slots.append(CpuSlot(index, socket, cluster, core, thread, mpidr_affinity(index)))
        self.slots: tuple[CpuSlot, ...] = tuple(slots)
        self._by_arch_id = {slot.arch_id: slot for slot in self.slots}

    @property
    def cold_booted(self) -> tuple[CpuSlot, ...]:
        """The slots enabled at boot (``-smp cpus=N``: the first N)."""
        return self.slots[: self.smp.cpus]

    def is_cold_booted(self, slot: CpuSlot) -> bool:
        """Whether ``slot`` is one of the CPUs enabled at boot."""
        return slot.index < self.smp.cpus

    def by_arch_id(self, arch_id: int) -> CpuSlot | None:
        """The slot whose arch id is ``arch_id`` (MPIDR affinity bits), or ``None``."""
        return self._by_arch_id.get(arch_id)

    def _ranges(self) -> dict[str, int]:
        return {
            "socket-id": self.smp.sockets,
            "cluster-id": self.smp.clusters,
            "core-id": self.smp.cores,
            "thread-id": self.smp.threads,
        }

    def find_slot(self, props: Mapping[str, object]) -> CpuSlot:
        """The slot named by ``device_add`` properties.

        A property may be omitted only where its level has a single member
        (``thread-id`` with ``threads=1``); every given value must be in range.
        """
        ranges = self._ranges()
        ids: dict[str, int] = {}
        for name in _PROP_NAMES:
            limit = ranges[name]
            value = props.get(name)
            if value is None:
                if limit == 1:
                    ids[name] = 0
                    continue
                raise TopologyError(f"CPU {name} is not set; valid {name} values are 0-{limit - 1}")
            if isinstance(value, bool) or not isinstance(value, int):
                raise TopologyError(f"CPU {name} must be an integer, not {value!r}")
            if not 0 <= value < limit:
                raise TopologyError(
                    f"CPU {name} {value} is out of range 0-{limit - 1}"
                )
            ids[name] = value
        index = (
            (ids["socket-id"] * self.smp.clusters + ids["cluster-id"]) * self.smp.cores
            + ids["core-id"]
        ) * self.smp.threads + ids["thread-id"]
        return self.slots[index]
