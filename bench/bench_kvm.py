"""Benchmark of the kvm backend under the machine (not a test: prints numbers, writes JSON).

    python bench/bench_kvm.py [--counts 8,64,256] [--cycles 100] [--out FILE]

Needs a usable arm64 KVM (run it inside the emulated host:
``python3 tools/arm64host/run.py run -- python3 bench/bench_kvm.py``, where
every figure is far slower than on arm64 metal: compare the ratios).
Measures:

* **realize** of a machine with ``maxcpus`` N (``cpus=2``): the whole
  ``VirtMachine.realize()`` per vCPU, and the backend's share of it
  (``attach`` + ``create_vcpu`` x N + ``vcpus_created``: VM, RAM, every
  ``KVM_CREATE_VCPU`` + ``VCPU_INIT`` + ``MPIDR``, SMCCC filter, vGIC), each
  against the bare ``KVM_CREATE_VCPU`` cost measured in the same run by
  ``bench_kvm_native.setup_figures`` (ratios ``realize_per_vcpu /
  create_vcpu_each`` and ``backend_per_vcpu / create_vcpu_each``);
* **hotplug latency** with the bundled guest answering (``cpus=2,maxcpus=4``,
  guest ``maxcpus=2``): ``device_add`` -> the guest marks the CPU online on
  its status page, and ``device_del`` -> ``DEVICE_DELETED`` (median, p99).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bench_kvm_native import kvm_host, median_figures, ms, report, setup_figures

from vcpuhp import MachineConfig, VirtMachine, memmap
from vcpuhp import events as ev
from vcpuhp.topology import CpuSlot
from vcpuhp_kvm import Kvm, KvmBackend
from vcpuhp_kvm.runner import KvmVcpu

_T = TypeVar("_T")
ONLINE = memmap.GUEST_STATUS_ADDR + 0x20
"""The guest's per-CPU online bytes (``vcpuhp-core/guest/README.md``)."""
BOOT_TIMEOUT = 300.0


class TimedKvmBackend(KvmBackend):
    """The kvm backend, timing its share of realize."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[str, float] = {"attach": 0.0, "create_vcpu": 0.0,
                                          "vcpus_created": 0.0}

    def _timed(self, what: str, fn: Callable[[], _T]) -> _T:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[what] += time.perf_counter() - start

    def attach(self, machine: VirtMachine) -> None:
        self._timed("attach", lambda: super(TimedKvmBackend, self).attach(machine))

    def create_vcpu(self, slot: CpuSlot) -> KvmVcpu:
        return self._timed("create_vcpu", lambda: super(TimedKvmBackend, self).create_vcpu(slot))

    def vcpus_created(self) -> None:
        self._timed("vcpus_created", lambda: super(TimedKvmBackend, self).vcpus_created())


def realize_figures(count: int) -> dict[str, Any]:
    """Time ``realize()`` of a kvm machine with ``count`` possible CPUs."""
    backend = TimedKvmBackend()
    machine = VirtMachine(MachineConfig.build(f"cpus=2,maxcpus={count}", cpu="host",
                                              accel="kvm", guest_cmdline="maxcpus=2"),
                          backend=backend)
    start = time.perf_counter()
    machine.realize()
    realize = time.perf_counter() - start
    machine.shutdown()
    backend_total = sum(backend.seconds.values())
    return {
        "vcpus": count,
        "realize_ms": ms(realize),
        "realize_per_vcpu_ms": ms(realize / count),
        "backend_ms": ms(backend_total),
        "backend_per_vcpu_ms": ms(backend_total / count),
        "backend_attach_ms": ms(backend.seconds["attach"]),
        "backend_create_vcpu_each_ms": ms(backend.seconds["create_vcpu"] / count),
        "backend_vcpus_created_ms": ms(backend.seconds["vcpus_created"]),
        "rest_of_realize_ms": ms(realize - backend_total),
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"median_ms": ms(statistics.median(ordered)), "p99_ms": ms(p99),
            "max_ms": ms(ordered[-1]), "samples": len(ordered)}


def hotplug_figures(cycles: int) -> dict[str, Any]:
    """``device_add`` -> guest online and ``device_del`` -> ``DEVICE_DELETED`` latencies."""
    machine = VirtMachine(MachineConfig.build("cpus=2,maxcpus=4", cpu="host", accel="kvm",
                                              guest_cmdline="maxcpus=2"))
    machine.realize()
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while "possible 0-3 present 0-3 enabled 0-1 online 0-1" not in machine.console:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the guest did not boot: {machine.console}")
            time.sleep(0.005)
        assert machine.memory is not None
        memory = machine.memory
        start_stats, start_threads = machine.backend_stats(), threading.active_count()
        online, deleted = [], []
        started = time.perf_counter()
        for n in range(cycles):
            index, device = 2 + n % 2, f"cpu{n}"
            with machine.events.recorder() as recorder:
                t0 = time.time()
                machine.device_add("host-arm-cpu", device, **{"core-id": index})
                while not memory.read_int(ONLINE + index, 1):
                    time.sleep(0.0005)
                online.append(time.time() - t0)
                t0 = time.time()
                machine.device_del(device)
                event = recorder.wait_for(ev.DEVICE_DELETED,
                                          lambda e, d=device: bool(e.data["device"] == d),
                                          timeout=BOOT_TIMEOUT)
                deleted.append(event.timestamp - t0)
        elapsed = time.perf_counter() - started
        end_stats = machine.backend_stats()
        live = ("vcpu_fds", "threads", "parked", "total_vcpus_created")
        return {
            "cycles": cycles,
            "cycles_per_second": round(cycles / elapsed, 2),
            "device_add_to_guest_online": percentiles(online),
            "device_del_to_device_deleted": percentiles(deleted),
            "counts_back_to_start": all(start_stats[k] == end_stats[k] for k in live)
            and threading.active_count() == start_threads,
            "total_exits": {k: v for k, v in end_stats.items() if k.startswith("total_exits_")},
        }
    finally:
        machine.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="8,64,256")
    parser.add_argument("--repeat", type=int, default=3,
                        help="realizes (and bare set-ups) per vCPU count; medians reported")
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = {**kvm_host(), "realize": []}
    realize_figures(8)  # warm-up: imports, first cffi calls, the guest image read
    with Kvm() as kvm:
        setup_figures(kvm, 8)
        for count in (int(n) for n in args.counts.split(",")):
            bare = median_figures([setup_figures(kvm, count) for _ in range(args.repeat)])
            real = median_figures([realize_figures(count) for _ in range(args.repeat)])
            each = bare["create_vcpu_each_ms"]
            results["realize"].append({
                **real,
                "bare_create_vcpu_each_ms": each,
                "bare_vgic_setup_ms": bare["vgic_setup_ms"],
                "bare_vcpu_init_and_mpidr_ms": bare["vcpu_init_and_mpidr_ms"],
                "realize_per_vcpu_over_bare_create": round(real["realize_per_vcpu_ms"] / each, 1),
                "backend_per_vcpu_over_bare_create": round(real["backend_per_vcpu_ms"] / each, 1),
            })
    results["hotplug"] = hotplug_figures(args.cycles)
    report(results, args.out)


if __name__ == "__main__":
    main()
