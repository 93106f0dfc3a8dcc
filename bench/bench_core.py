"""Benchmarks of the core machine on the null backend (not a test: prints numbers, writes JSON).

    python bench/bench_core.py [--cycles 10000] [--out bench/results/core.json]

Measures realize time and peak Python memory for maxcpus 8, 64 and 512;
device_add -> enabled latency and full plug/unplug cycle latency (median,
p99); and runs many cycles checking that parked handles and live Python
objects come back to their starting counts.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Any

from vcpuhp import MachineConfig, VirtMachine
from vcpuhp_null import GuestDriver


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _summary(seconds: list[float]) -> dict[str, float]:
    micro = [s * 1e6 for s in seconds]
    return {"median_us": statistics.median(micro), "p99_us": _percentile(micro, 0.99),
            "samples": len(micro)}


def bench_realize(maxcpus: int, repeats: int = 5) -> dict[str, Any]:
    times = []
    peak = 0
    for _ in range(repeats):
        tracemalloc.start()
        started = time.perf_counter()
        machine = VirtMachine(MachineConfig.build(f"cpus=1,maxcpus={maxcpus}"))
        machine.realize()
        times.append(time.perf_counter() - started)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        machine.shutdown()
    return {"maxcpus": maxcpus, "realize_median_ms": statistics.median(times) * 1e3,
            "peak_python_kib": peak / 1024}


def bench_cycles(cycles: int) -> dict[str, Any]:
    machine = VirtMachine(MachineConfig.build("cpus=2,maxcpus=8"))
    machine.realize()
    driver = GuestDriver(machine)
    driver.boot()
    add_latency, cycle_latency = [], []
    gc.collect()
    parked_before = sorted(machine.parked)
    handles_before = machine.parked.handles()
    objects_before = len(gc.get_objects())
    started_all = time.perf_counter()
    for n in range(cycles):
        index = 2 + n % 6
        started = time.perf_counter()
        machine.device_add("max-arm-cpu", "hot", **{"core-id": index})
        add_latency.append(time.perf_counter() - started)
        driver.handle_hotplug()
        machine.device_del("hot")
        driver.handle_hotplug()
        cycle_latency.append(time.perf_counter() - started)
    elapsed = time.perf_counter() - started_all
    gc.collect()
    objects_after = len(gc.get_objects())
    result = {
        "cycles": cycles,
        "cycles_per_second": cycles / elapsed,
        "device_add_to_enabled": _summary(add_latency),
        "plug_unplug_cycle": _summary(cycle_latency),
        "parked_unchanged": sorted(machine.parked) == parked_before
        and all(machine.parked.handles()[a] is h for a, h in handles_before.items()),
        "python_objects_before": objects_before,
        "python_objects_after": objects_after,
        "backend_stats": machine.backend_stats(),
    }
    machine.check_invariants()
    machine.shutdown()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/core.json"))
    args = parser.parse_args()
    results: dict[str, Any] = {"realize": [bench_realize(n) for n in (8, 64, 512)]}
    for row in results["realize"]:
        print(f"realize maxcpus={row['maxcpus']:<4} {row['realize_median_ms']:8.2f} ms  "
              f"peak {row['peak_python_kib']:9.1f} KiB")
    results["cycles"] = cycles = bench_cycles(args.cycles)
    print(f"{cycles['cycles']} cycles: {cycles['cycles_per_second']:.0f}/s; "
          f"device_add->enabled median {cycles['device_add_to_enabled']['median_us']:.1f} us "
          f"p99 {cycles['device_add_to_enabled']['p99_us']:.1f} us; "
          f"cycle median {cycles['plug_unplug_cycle']['median_us']:.1f} us "
          f"p99 {cycles['plug_unplug_cycle']['p99_us']:.1f} us")
    print(f"parked handles unchanged: {cycles['parked_unchanged']}; python objects "
          f"{cycles['python_objects_before']} -> {cycles['python_objects_after']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
