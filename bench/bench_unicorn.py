"""Benchmark of the tcg-unicorn backend (not a test: prints numbers, writes JSON).

    python bench/bench_unicorn.py [--cycles 1000] [--out bench/results/unicorn.json]

Measures, with the bundled guest answering hotplug:

* ``device_add`` -> the vCPU starts (``CPU_POWERED_ON``) and -> the guest marks
  it online in its status page; ``device_del`` -> ``DEVICE_DELETED``
  (median and p99, milliseconds);
* plug/unplug cycles per second, RSS before and after the cycles, and that
  engines, threads and translation contexts came back to their start;

and, with a tight guest loop (``subs; add; b.ne``: 3 instructions per turn,
instruction words from ``tests/tcg_unicorn/a64asm.py`` in a minimal ELF):

* guest instructions per second of one busy vCPU and the aggregate of two,
  with the process CPU time over wall time (above 1 means the vCPU threads ran
  in parallel: Unicorn releases the GIL in ``emu_start``) and how fast a pure
  Python thread counts meanwhile (the GIL is free for it);
* the same loop timed under ``qemu-system-aarch64 -M virt -cpu max`` for the
  ratio (skipped, with a note, when QEMU is not installed).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from vcpuhp import MachineConfig, VirtMachine, memmap
from vcpuhp import events as ev

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "tcg_unicorn"))
import a64asm as a

STATUS = memmap.GUEST_STATUS_ADDR
ONLINE = STATUS + 0x20
COUNTERS = STATUS + 0x800
"""Per-CPU loop counters of the throughput image, one 64-byte line each."""
LOOP_INSNS = 3
PSCI_SYSTEM_OFF = 0x8400_0008
CPU_ON_64 = 0xC400_0003
LIVE = ("engines", "threads", "contexts_registered", "contexts_free")


def rss_kib() -> int:
    """Resident set size of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"median_ms": round(statistics.median(ordered) * 1e3, 3),
            "p99_ms": round(p99 * 1e3, 3), "max_ms": round(ordered[-1] * 1e3, 3),
            "samples": len(ordered)}


# -- hotplug latency and cycles ---------------------------------------------------------------


def bench_hotplug(cycles: int) -> dict[str, Any]:
    machine = VirtMachine(MachineConfig.build("cpus=2,maxcpus=4", accel="tcg-unicorn",
                                              guest_cmdline="maxcpus=2"))
    machine.realize()
    try:
        deadline = time.monotonic() + 30
        while "possible 0-3 present 0-3 enabled 0-1 online 0-1" not in machine.console:
            if time.monotonic() > deadline:
                raise TimeoutError(f"guest did not boot: {machine.console}")
            time.sleep(0.005)
        assert machine.memory is not None
        memory = machine.memory
        gc.collect()
        start_stats, start_rss = machine.backend_stats(), rss_kib()
        start_threads = threading.active_count()
        calls, powered, online, deleted = [], [], [], []
        started = time.perf_counter()
        for n in range(cycles):
            index = 2 + n % 2
            device = f"cpu{n}"
            with machine.events.recorder() as recorder:
                t0 = time.time()
                machine.device_add("max-arm-cpu", device, **{"core-id": index})
                calls.append(time.time() - t0)
                while not memory.read_int(ONLINE + index, 1):
                    time.sleep(0)
                online.append(time.time() - t0)
                event = recorder.wait_for(ev.CPU_POWERED_ON,
                                          lambda e, i=index: e.data["cpu_index"] == i)
                powered.append(event.timestamp - t0)
                t0 = time.time()
                machine.device_del(device)
                event = recorder.wait_for(ev.DEVICE_DELETED,
                                          lambda e, d=device: e.data["device"] == d)
                deleted.append(event.timestamp - t0)
        elapsed = time.perf_counter() - started
        gc.collect()
        end_stats, end_rss = machine.backend_stats(), rss_kib()
        machine.check_invariants()
        return {
            "cycles": cycles,
            "cycles_per_second": round(cycles / elapsed, 1),
            "device_add_call": percentiles(calls),
            "device_add_to_powered_on": percentiles(powered),
            "device_add_to_guest_online": percentiles(online),
            "device_del_to_device_deleted": percentiles(deleted),
            "rss_kib_before": start_rss,
            "rss_kib_after": end_rss,
            "rss_kib_per_cycle": round((end_rss - start_rss) / cycles, 2),
            "counts_back_to_start": all(start_stats[k] == end_stats[k] for k in LIVE)
            and threading.active_count() == start_threads,
            "backend_stats_after": end_stats,
        }
    finally:
        machine.shutdown()


# -- guest instruction throughput ---------------------------------------------------------------


def elf_image(code: bytes, base: int = memmap.KERNEL_LOAD_ADDR) -> bytes:
    """A minimal AArch64 ELF64 executable: one R+W+X PT_LOAD segment at ``base``."""
    header_size, phdr_size = 64, 56
    offset = header_size + phdr_size
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 183, 1, base, header_size, 0, 0,
                                 header_size, phdr_size, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 7, offset, base, base, len(code), len(code), 0x1000)
    return header + phdr + code


def timed_loop(iterations: int) -> a.Program:
    """Print S, run ``iterations`` turns of a 3-instruction loop, print E, SYSTEM_OFF."""
    p = a.Program(memmap.KERNEL_LOAD_ADDR)
    p(a.movz(2, memmap.UART.base >> 16, 16))
    for char in b"S\n":
        p(a.movz_w(3, char), a.str32(3, 2))
    p(a.mov64(4, iterations))
    p.label("loop")(a.subs_imm(4, 4, 1), a.add_imm(5, 5, 1)).b_cond(a.COND_NE, "loop")
    for char in b"E\n":
        p(a.movz_w(3, char), a.str32(3, 2))
    p(a.mov64(0, PSCI_SYSTEM_OFF), a.hvc(0))
    p.label("park")(a.WFI).b("park")
    return p


def counting_loops(cpus: int) -> a.Program:
    """Each of ``cpus`` CPUs counts forever in its own cache line at COUNTERS + 64 * cpu."""
    p = a.Program(memmap.KERNEL_LOAD_ADDR)
    for cpu in range(1, cpus):
        p(a.mov64(0, CPU_ON_64), a.mov64(1, cpu)).mov_label(2, "count")(a.mov64(3, 64 * cpu))
        p(a.hvc(0))
    p(a.movz(0, 0))
    p.label("count")(a.mov64(9, COUNTERS), a.add_reg(9, 9, 0), a.movz(5, 0))
    p.label("loop")(a.add_imm(5, 5, 1), a.str64(5, 9)).b("loop")
    return p


def python_counts(seconds: float) -> int:
    """How far a pure Python loop counts in ``seconds`` (GIL availability)."""
    deadline, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < deadline:
        n += 1
    return n


def bench_counting(cpus: int, seconds: float, tmp: Path) -> dict[str, Any]:
    """Guest instructions per second of ``cpus`` busy vCPUs: alone (best of three runs),
    then beside a busy Python thread (which competes with the vCPU threads for the GIL
    between slices)."""
    image = tmp / f"count{cpus}.bin"
    image.write_bytes(counting_loops(cpus).assemble())
    machine = VirtMachine(MachineConfig.build(f"cpus={cpus},maxcpus={cpus}",
                                              accel="tcg-unicorn", kernel=image))
    machine.realize()
    try:
        assert machine.memory is not None
        memory = machine.memory

        def counters() -> list[int]:
            return [memory.read_int(COUNTERS + 64 * cpu, 8) for cpu in range(cpus)]

        deadline = time.monotonic() + 10
        while not all(counters()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not every CPU counts: {counters()}")
            time.sleep(0.001)

        def measure(host_work: Any) -> tuple[list[float], float, float, Any]:
            before, wall, cpu = counters(), time.perf_counter(), time.process_time()
            outcome = host_work()
            after = counters()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rates = [(b - a_) * LOOP_INSNS / wall for a_, b in zip(before, after, strict=True)]
            return rates, wall, cpu, outcome

        # The best of three: other load on a shared host only ever slows a run down.
        runs = [measure(lambda: time.sleep(seconds)) for _ in range(3)]
        alone, wall, cpu, _ = max(runs, key=lambda run: sum(run[0]))
        busy, busy_wall, busy_cpu, turns = measure(lambda: python_counts(seconds))
        return {
            "vcpus": cpus,
            "instructions_per_second": round(sum(alone)),
            "per_vcpu": [round(x) for x in alone],
            "process_cpu_over_wall": round(cpu / wall, 2),
            "all_runs_instructions_per_second": [round(sum(run[0])) for run in runs],
            "beside_busy_python_thread": {
                "instructions_per_second": round(sum(busy)),
                "process_cpu_over_wall": round(busy_cpu / busy_wall, 2),
                "python_thread_turns_per_second": round(turns / busy_wall),
            },
        }
    finally:
        machine.shutdown()


def unicorn_timed_loop(iterations: int, tmp: Path) -> float:
    image = tmp / "loop.elf"
    image.write_bytes(elf_image(timed_loop(iterations).assemble()))
    stamps: dict[str, float] = {}
    machine = VirtMachine(MachineConfig.build("1", accel="tcg-unicorn", kernel=image))
    done = threading.Event()

    def listen(event: ev.MachineEvent) -> None:
        if event.name == ev.CONSOLE and event.data["line"] in ("S", "E"):
            stamps[event.data["line"]] = time.perf_counter()
        if event.name == ev.SHUTDOWN:
            done.set()

    machine.events.subscribe(listen)
    machine.realize()
    try:
        if not done.wait(600):
            raise TimeoutError("the timed loop did not finish under Unicorn")
    finally:
        machine.shutdown()
    return stamps["E"] - stamps["S"]


def qemu_timed_loop(iterations: int, tmp: Path) -> dict[str, Any]:
    qemu = shutil.which("qemu-system-aarch64")
    if qemu is None:
        return {"skipped": "qemu-system-aarch64 is not installed (apt install qemu-system-arm)"}
    image = tmp / "loop.elf"
    image.write_bytes(elf_image(timed_loop(iterations).assemble()))
    command = [qemu, "-M", "virt", "-cpu", "max", "-m", "256M", "-nographic",
               "-monitor", "none", "-nic", "none", "-kernel", str(image)]
    stamps: dict[str, float] = {}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None
        try:
            for raw in process.stdout:
                line = raw.strip().decode(errors="replace")
                if line in ("S", "E"):
                    stamps[line] = time.perf_counter()
                if line == "E":
                    break
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    version = subprocess.run([qemu, "--version"], capture_output=True, text=True,
                             check=False).stdout.splitlines()[0]
    if "E" not in stamps:
        return {"skipped": f"QEMU did not run the loop ({' '.join(command)})"}
    seconds = stamps["E"] - stamps["S"]
    return {"seconds": round(seconds, 3), "qemu": version,
            "instructions_per_second": round(iterations * LOOP_INSNS / seconds)}


def bench_throughput(seconds: float, iterations: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        idle_python = python_counts(seconds) / seconds
        one = bench_counting(1, seconds, tmp)
        two = bench_counting(2, seconds, tmp)
        unicorn_seconds = unicorn_timed_loop(iterations, tmp)
        qemu = qemu_timed_loop(iterations, tmp)
    timed: dict[str, Any] = {
        "iterations": iterations,
        "instructions": iterations * LOOP_INSNS,
        "unicorn_seconds": round(unicorn_seconds, 3),
        "unicorn_instructions_per_second": round(iterations * LOOP_INSNS / unicorn_seconds),
        "qemu": qemu,
    }
    if "seconds" in qemu:
        timed["qemu_over_unicorn_speed"] = round(unicorn_seconds / qemu["seconds"], 2)
    return {
        "python_thread_turns_per_second_idle": round(idle_python),
        "one_busy_vcpu": one,
        "two_busy_vcpus": two,
        "aggregate_speedup_two_over_one": round(
            two["instructions_per_second"] / one["instructions_per_second"], 2),
        "timed_loop": timed,
    }


def bench_idle(seconds: float) -> dict[str, Any]:
    """Process CPU time over wall time while the booted bundled guest idles (every CPU in wfi
    or powered off), after it printed its boot masks."""
    machine = VirtMachine(MachineConfig.build("cpus=2,maxcpus=4", accel="tcg-unicorn",
                                              guest_cmdline="maxcpus=1"))
    machine.realize()
    try:
        deadline = time.monotonic() + 30
        while not any(line.startswith("possible ") for line in machine.console):
            if time.monotonic() > deadline:
                raise TimeoutError(f"guest did not boot: {machine.console}")
            time.sleep(0.05)
        time.sleep(0.5)
        wall, cpu = time.perf_counter(), time.process_time()
        time.sleep(seconds)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return {"seconds": round(wall, 2), "cpu_seconds": round(cpu, 4),
                "cpu_fraction_of_one_core": round(cpu / wall, 4),
                "online": sorted(machine.cpu_masks().online)}
    finally:
        machine.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000, help="plug/unplug cycles")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="measuring time of each throughput run")
    parser.add_argument("--iterations", type=int, default=100_000_000,
                        help="turns of the timed loop (3 instructions each)")
    parser.add_argument("--idle-seconds", type=float, default=8.0,
                        help="wall time of the idle CPU measurement")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "unicorn.json")
    args = parser.parse_args(argv)
    result = {
        "host": {"machine": platform.machine(), "python": platform.python_version(),
                 "cpus": len(__import__("os").sched_getaffinity(0))},
        "hotplug": bench_hotplug(args.cycles),
        "idle": bench_idle(args.idle_seconds),
        "throughput": bench_throughput(args.seconds, args.iterations),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    hot, thr = result["hotplug"], result["throughput"]
    print(f"hotplug ({hot['cycles']} cycles, {hot['cycles_per_second']} cycles/s):")
    for key in ("device_add_call", "device_add_to_powered_on", "device_add_to_guest_online",
                "device_del_to_device_deleted"):
        row = hot[key]
        print(f"  {key:30s} median {row['median_ms']:8.3f} ms  p99 {row['p99_ms']:8.3f} ms")
    print(f"  RSS {hot['rss_kib_before']} KiB -> {hot['rss_kib_after']} KiB; "
          f"counts back to start: {hot['counts_back_to_start']}")
    for name in ("one_busy_vcpu", "two_busy_vcpus"):
        row, busy = thr[name], thr[name]["beside_busy_python_thread"]
        print(f"{name}: {row['instructions_per_second'] / 1e6:.1f} M guest insn/s "
              f"(per vCPU {[round(x / 1e6, 1) for x in row['per_vcpu']]}), "
              f"process CPU/wall {row['process_cpu_over_wall']}")
        print(f"  beside a busy Python thread: {busy['instructions_per_second'] / 1e6:.1f} M "
              f"insn/s, CPU/wall {busy['process_cpu_over_wall']}, the Python thread "
              f"{busy['python_thread_turns_per_second'] / 1e6:.2f} M turns/s "
              f"(alone {thr['python_thread_turns_per_second_idle'] / 1e6:.2f})")
    timed = thr["timed_loop"]
    rate = timed["unicorn_instructions_per_second"] / 1e6
    print(f"timed loop, {timed['instructions'] / 1e6:.0f} M insns: unicorn "
          f"{timed['unicorn_seconds']} s ({rate:.0f} M/s)", end="")
    if "seconds" in timed["qemu"]:
        print(f", qemu {timed['qemu']['seconds']} s "
              f"({timed['qemu']['instructions_per_second'] / 1e6:.0f} M/s); "
              f"QEMU is {timed['qemu_over_unicorn_speed']}x faster")
    else:
        print(f"; qemu: {timed['qemu']['skipped']}")
    idle = result["idle"]
    print(f"idle machine (online {idle['online']}): {idle['cpu_fraction_of_one_core'] * 100:.2f}% "
          f"of one core over {idle['seconds']} s")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
