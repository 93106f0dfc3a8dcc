"""Benchmark of ACPI table building (not a test: prints numbers, writes JSON).

    python bench/bench_acpi.py [--repeats 15] [--out bench/results/acpi.json]

For maxcpus 8, 64 and 512 (cpus=1, the rest hot-pluggable): the median time
of ``build_tables`` (the whole set: AML encoding of the DSDT included) and of
``place`` into guest RAM, and the total size of the tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vcpuhp import MachineConfig, VirtMachine, memmap
from vcpuhp.acpi import build_tables
from vcpuhp.memory import GuestMemory


def _median_ms(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def bench_build(maxcpus: int, repeats: int) -> dict[str, Any]:
    machine = VirtMachine(MachineConfig.build(f"cpus=1,maxcpus={maxcpus}"))
    tables = build_tables(machine.description)
    memory = GuestMemory(16 * memmap.MiB)
    try:
        place_ms = _median_ms(lambda: tables.place(memory, memmap.ACPI_TABLES_ADDR), repeats)
    finally:
        memory.close()
    return {
        "maxcpus": maxcpus,
        "build_median_ms": _median_ms(lambda: build_tables(machine.description), repeats),
        "place_median_ms": place_ms,
        "repeats": repeats,
        "total_bytes": tables.size,
        "table_bytes": {name: len(data) for name, data in tables.tables.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("bench/results/acpi.json"))
    args = parser.parse_args()
    results = [bench_build(n, args.repeats) for n in (8, 64, 512)]
    for row in results:
        print(f"maxcpus={row['maxcpus']:<4} build {row['build_median_ms']:8.2f} ms   "
              f"place {row['place_median_ms']:6.2f} ms   {row['total_bytes']:>7} bytes")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"build_tables": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
