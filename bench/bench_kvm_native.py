"""Benchmark of the kvm native layer (not a test: prints numbers, writes JSON).

    python bench/bench_kvm_native.py [--counts 8,64,256] [--kicks 50] [--out FILE]

Needs a usable arm64 KVM (run it inside the emulated host:
``python3 tools/arm64host/run.py run -- python3 bench/bench_kvm_native.py``).
Measures, per vCPU count N:

* ``KVM_CREATE_VCPU`` x N (each with its ``kvm_run`` mmap), total and per vCPU;
* the set-up around it: VM + RAM slot + SMCCC filter, then vGICv3 (create,
  addresses, ``NR_IRQS``, ``CTRL_INIT``), then ``KVM_ARM_VCPU_INIT`` +
  ``MPIDR_EL1`` for every vCPU;

and the kick latency: a vCPU thread runs a guest spinning in ``b .``, the
main thread waits until the thread has been in ``KVM_RUN`` for a moment, then
times ``kick()`` -> the thread is back from ``run()`` with ``Interrupted``
(median, p90, max over ``--kicks`` rounds).
Under TCG-in-TCG every figure is far slower than on arm64 metal: compare
ratios, not absolute values.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import struct
import threading
import time
from pathlib import Path
from typing import Any

from vcpuhp import memmap
from vcpuhp.gic import NUM_IRQS, layout_redistributors
from vcpuhp.memory import GuestMemory
from vcpuhp.topology import SmpConfig, Topology
from vcpuhp_kvm import (
    Interrupted,
    Kvm,
    Vgicv3,
    forward_psci_to_user,
    install_kick_handler,
    probe,
    regs,
    uapi,
)

RAM_SIZE = 2 * 1024 * 1024
SPIN = 0x14000000  # b .


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def setup_figures(kvm: Kvm, count: int) -> dict[str, Any]:
    """Time each step of building a VM with ``count`` vCPUs in KVM's order."""
    t0 = time.perf_counter()
    vm = kvm.create_vm()
    ram = GuestMemory(RAM_SIZE)
    vm.set_user_memory_region(0, memmap.RAM_BASE, RAM_SIZE, ram.host_address)
    forward_psci_to_user(vm)
    t1 = time.perf_counter()
    vcpus = [vm.create_vcpu(index) for index in range(count)]
    t2 = time.perf_counter()
    vgic = Vgicv3.create(vm, memmap.GICD.base, layout_redistributors(count), NUM_IRQS)
    t2b = time.perf_counter()
    vgic.initialize()
    t3 = time.perf_counter()
    target = vm.arm_preferred_target().with_features(uapi.KVM_ARM_VCPU_PSCI_0_2)
    slots = Topology(SmpConfig.parse(f"cpus=1,maxcpus={count}")).slots
    for vcpu, slot in zip(vcpus, slots, strict=True):
        vcpu.init(target.with_features(uapi.KVM_ARM_VCPU_POWER_OFF) if slot.index else target)
        vcpu.set_one_reg(regs.MPIDR_EL1, slot.mpidr)
    t4 = time.perf_counter()
    for vcpu in vcpus:
        vcpu.close()
    vgic.close()
    vm.close()
    ram.close()
    t5 = time.perf_counter()
    return {
        "vcpus": count,
        "vm_ram_filter_ms": ms(t1 - t0),
        "create_vcpus_ms": ms(t2 - t1),
        "create_vcpu_each_ms": ms((t2 - t1) / count),
        "vgic_setup_ms": ms(t3 - t2),
        "vgic_create_and_addresses_ms": ms(t2b - t2),
        "vgic_ctrl_init_ms": ms(t3 - t2b),
        "vcpu_init_and_mpidr_ms": ms(t4 - t3),
        "teardown_ms": ms(t5 - t4),
        "total_ms": ms(t5 - t0),
    }


def median_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over ``runs``."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def kick_latencies(kvm: Kvm, rounds: int) -> list[float]:
    """Seconds from ``kick()`` to the vCPU thread's return from ``run()``, per round."""
    vm = kvm.create_vm()
    ram = GuestMemory(RAM_SIZE)
    vm.set_user_memory_region(0, memmap.RAM_BASE, RAM_SIZE, ram.host_address)
    vcpu = vm.create_vcpu(0)
    vgic = Vgicv3.create(vm, memmap.GICD.base, layout_redistributors(1), NUM_IRQS)
    vgic.initialize()
    vcpu.init(vm.arm_preferred_target().with_features(uapi.KVM_ARM_VCPU_PSCI_0_2))
    ram.write(memmap.RAM_BASE, struct.pack("<I", SPIN))
    vcpu.set_one_reg(regs.PC, memmap.RAM_BASE)
    latencies = []
    try:
        for _ in range(rounds):
            outcome: list[object] = []
            thread = threading.Thread(target=lambda out=outcome: out.append(vcpu.run()))
            thread.start()
            time.sleep(0.05)  # let it enter KVM_RUN and the guest
            start = time.perf_counter()
            vcpu.kick()
            thread.join(60)
            latencies.append(time.perf_counter() - start)
            if not (outcome and isinstance(outcome[0], Interrupted)):
                raise SystemExit(f"the kick did not interrupt KVM_RUN: {outcome}")
    finally:
        vcpu.close()
        vgic.close()
        vm.close()
        ram.close()
    return latencies


def kvm_host() -> dict[str, Any]:
    """Exit unless KVM is usable here; install the kick handler; the host's figures."""
    support = probe()
    if not support.viability.viable:
        raise SystemExit(f"no usable KVM here: {support.viability.reason}")
    install_kick_handler()
    return {"kernel": support.kernel, "machine": platform.machine(),
            "max_vcpus": support.max_vcpus}


def report(results: dict[str, Any], out: Path | None) -> None:
    """Print ``results`` as JSON, and write them to ``out`` if given."""
    text = json.dumps(results, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="8,64,256")
    parser.add_argument("--kicks", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5,
                        help="set-ups per vCPU count; the median of each step is reported")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = kvm_host()
    with Kvm() as kvm:
        setup_figures(kvm, 8)  # warm-up: first calls through cffi, first page faults
        results["setup"] = [
            median_figures([setup_figures(kvm, int(n)) for _ in range(args.repeat)])
            for n in args.counts.split(",")
        ]
        lat = sorted(kick_latencies(kvm, args.kicks))
    results["kick_ms"] = {"rounds": len(lat), "median": ms(statistics.median(lat)),
                          "p90": ms(lat[int(0.9 * (len(lat) - 1))]), "max": ms(lat[-1])}
    report(results, args.out)


if __name__ == "__main__":
    main()
