"""The guest's sysfs view of CPUs: possible / present / enabled / online masks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def format_cpu_list(cpus: Iterable[int]) -> str:
    """Format CPU numbers as Linux sysfs does: ``0-1,4`` (empty set: empty string)."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    start = prev = None
    for cpu in [*ordered, None]:
        if cpu is not None and prev is not None and cpu == prev + 1:
            prev = cpu
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = cpu
    return ",".join(parts)


def parse_cpu_list(text: str) -> frozenset[int]:
    """Inverse of :func:`format_cpu_list`."""
    cpus: set[int] = set()
    for part in filter(None, text.strip().split(",")):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return frozenset(cpus)


@dataclass(frozen=True)
class CpuMasks:
    """The four masks the guest shows under ``/sys/devices/system/cpu``."""

    possible: frozenset[int]
    present: frozenset[int]
    enabled: frozenset[int]
    online: frozenset[int]

    def as_lists(self) -> dict[str, str]:
        """Each mask in sysfs list form."""
        return {
            "possible": format_cpu_list(self.possible),
            "present": format_cpu_list(self.present),
            "enabled": format_cpu_list(self.enabled),
            "online": format_cpu_list(self.online),
        }

    def __str__(self) -> str:
        return " ".join(f"{name} {value}" for name, value in self.as_lists().items())

    @classmethod
    def parse(cls, line: str) -> CpuMasks:
        """Parse a ``possible 0-5 present 0-5 enabled 0-3 online 0-1`` line."""
        words = line.split()
        values: dict[str, frozenset[int]] = {}
        names = ("possible", "present", "enabled", "online")
        position = 0
        while position < len(words):
            name = words[position]
            if name not in names:
                raise ValueError(f"unexpected word {name!r} in masks line {line!r}")
            nxt = words[position + 1] if position + 1 < len(words) else ""
            if nxt in names or not nxt:
                values[name] = frozenset()
                position += 1
            else:
                values[name] = parse_cpu_list(nxt)
                position += 2
        return cls(*(values.get(n, frozenset()) for n in names))
