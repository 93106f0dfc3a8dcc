"""Benchmark of the tcg-unicorn backend: every issue-11 figure, several repetitions.

    python bench/bench_unicorn.py [--repeat 3] [--cycles 300] [--out bench/results/unicorn.json]

Not a test: it prints a table and writes JSON. Each repetition measures every
figure once, one after the other, so that a burst of load from other processes
on a shared host lands on every figure alike; each figure is then reported as
best / median / worst over the repetitions with its spread ((worst - best) /
median). The host's load average is recorded before and after every
repetition: while it is above the number of cores the figures are the host's
as much as the backend's. On Linux with ``sched_autogroup`` each session gets
an equal share of the CPUs however many threads it runs (the JSON records
this process's ``/proc/self/autogroup``), so on a shared host the two vCPUs
of the scaling figure may be given half a core between them: their runnable
fraction shows that they were ready to run in parallel all along.

* **speed**: guest instructions per second of one busy vCPU on a timed loop
  (``subs; add; b.ne``, 3 instructions per turn, in a minimal ELF), the same
  loop under ``qemu-system-aarch64 -M virt -cpu max`` TCG, and their ratio
  (QEMU skipped, with a note, when it is not installed);
* **scaling**: aggregate guest instructions per second of two vCPUs each
  counting in its own cache line, over one; with the process CPU time over
  wall time, and each vCPU thread's *runnable fraction* (time on a CPU plus
  time waiting for one, over wall time, from ``/proc/.../schedstat``): near
  1.0 means nothing in the process (the GIL, a lock) held that thread back,
  whatever the load, so the vCPUs ran in parallel as far as the host let them;
* **latency**: with the bundled guest otherwise idle, ``device_add`` -> the
  vCPU starts (``CPU_POWERED_ON``), -> the guest reports it online (its
  ``_OST`` success), ``device_del`` -> ``DEVICE_DELETED`` (median, p99 per
  repetition), cycles per second, RSS, and that engines, threads and
  translation contexts came back to their start;
* **idle**: process CPU time over wall time with ``cpus=4``, all online,
  every CPU sleeping in ``wfi`` between its timer ticks;
* **timer**: how late a guest sleeping in ``wfi`` with its virtual timer
  armed 2 ms ahead woke (``CNTVCT`` at the wake minus ``CVAL``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vcpuhp import MachineConfig, VirtMachine, memmap
from vcpuhp import events as ev

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "tcg_unicorn"))
import a64asm as a
from unicorn_guests import DONE, DONE_MAGIC, RESULTS, TIMER_LATE, elf_image, timer_guest

COUNTERS = memmap.GUEST_STATUS_ADDR + 0x800
"""Per-CPU loop counters of the counting image, one 64-byte line each."""
LOOP_INSNS = 3
PSCI_SYSTEM_OFF = 0x8400_0008
CPU_ON_64 = 0xC400_0003
OST_DEVICE_CHECK, OST_SUCCESS = 0x1, 0x0
LIVE = ("engines", "threads", "contexts_registered", "contexts_free")
COUNTER_NS = 16
"""The guest counter's period (62.5 MHz)."""
SETTLE = 30.0


def rss_kib() -> int:
    """Resident set size of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def load() -> list[float]:
    """The host's 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def autogroup() -> str | None:
    """This process's scheduler autogroup and its nice value (Linux), if any."""
    try:
        return Path("/proc/self/autogroup").read_text().strip()
    except OSError:
        return None


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def ms(samples: list[float]) -> dict[str, float]:
    """Median, p99 and max of ``samples`` (seconds) in milliseconds."""
    return {"median_ms": round(statistics.median(samples) * 1e3, 3),
            "p99_ms": round(percentile(samples, 0.99) * 1e3, 3),
            "max_ms": round(max(samples) * 1e3, 3), "samples": len(samples)}


def summary(values: list[float], higher_is_better: bool) -> dict[str, Any]:
    """Best, median, worst and spread ((worst - best) / median) of one figure's repetitions."""
    best, worst = (max, min) if higher_is_better else (min, max)
    median = statistics.median(values)
    spread = abs(best(values) - worst(values)) / median if median else 0.0
    return {"best": round(best(values), 4), "median": round(median, 4),
            "worst": round(worst(values), 4), "spread": round(spread, 3),
            "runs": [round(v, 4) for v in values]}


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = SETTLE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.005)


def thread_times() -> dict[int, tuple[int, int]]:
    """Per thread of this process: (ns on a CPU, ns runnable but waiting for one)."""
    times = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            run, wait, _ = Path(f"/proc/self/task/{tid}/schedstat").read_text().split()
        except (OSError, ValueError):
            continue
        times[int(tid)] = (int(run), int(wait))
    return times


# -- guest programs --------------------------------------------------------------------------


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


# -- figures -----------------------------------------------------------------------------------


def bench_counting(cpus: int, seconds: float, tmp: Path) -> dict[str, Any]:
    """Guest instructions per second of ``cpus`` busy vCPUs, CPU/wall, runnable fractions."""
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

        wait_for(lambda: all(counters()), "every CPU counting")
        tids = [v.thread_id for v in machine.backend.vcpus.values()]  # type: ignore[attr-defined]
        before, threads = counters(), thread_times()
        wall, cpu = time.perf_counter(), time.process_time()
        time.sleep(seconds)
        after, threads_after = counters(), thread_times()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rates = [(b - a_) * LOOP_INSNS / wall for a_, b in zip(before, after, strict=True)]
        runnable = []
        for tid in tids:
            (run0, wait0), (run1, wait1) = threads[tid], threads_after[tid]
            runnable.append(round(((run1 - run0) + (wait1 - wait0)) / 1e9 / wall, 3))
        return {"instructions_per_second": round(sum(rates)),
                "per_vcpu": [round(x) for x in rates],
                "process_cpu_over_wall": round(cpu / wall, 3),
                "vcpu_runnable_fraction": runnable}
    finally:
        machine.shutdown()


def unicorn_timed_loop(iterations: int, tmp: Path) -> float:
    """Seconds from S to E of the timed loop under tcg-unicorn."""
    image = tmp / "loop.elf"
    image.write_bytes(elf_image(timed_loop(iterations).assemble()))
    stamps: dict[str, float] = {}
    machine = VirtMachine(MachineConfig.build("1", accel="tcg-unicorn", kernel=image))
    done = threading.Event()

    def listen(event: ev.MachineEvent) -> None:
        if event.name == ev.CONSOLE and event.data["line"] in ("S", "E"):
            stamps[event.data["line"]] = event.timestamp
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
    """Seconds from S to E of the timed loop under qemu-system-aarch64 (or why not)."""
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
                    stamps[line] = time.time()
                if line == "E":
                    break
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    if "E" not in stamps:
        return {"skipped": f"QEMU did not run the loop ({' '.join(command)})"}
    version = subprocess.run([qemu, "--version"], capture_output=True, text=True,
                             check=False).stdout.splitlines()[0]
    return {"seconds": stamps["E"] - stamps["S"], "qemu": version}


def is_masks(event: ev.MachineEvent) -> bool:
    """The bundled guest's masks line: it prints one when it has handled a hotplug event."""
    return str(event.data["line"]).startswith("possible ")


def bench_hotplug(cycles: int) -> dict[str, Any]:
    """Plug/unplug cycles against the bundled guest; each request waits until the guest has
    finished with the previous one (printed its masks), so the guest is otherwise idle."""
    machine = VirtMachine(MachineConfig.build("cpus=2,maxcpus=4", accel="tcg-unicorn",
                                              guest_cmdline="maxcpus=2"))
    machine.realize()
    try:
        wait_for(lambda: "possible 0-3 present 0-3 enabled 0-1 online 0-1" in machine.console,
                 "the guest to boot")
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
                event = recorder.wait_for(ev.CPU_POWERED_ON,
                                          lambda e, i=index: e.data["cpu_index"] == i)
                powered.append(event.timestamp - t0)
                event = recorder.wait_for(
                    ev.ACPI_DEVICE_OST,
                    lambda e, i=index: e.data["info"]["slot"] == str(i)
                    and e.data["info"]["source"] == OST_DEVICE_CHECK)
                if event.data["info"]["status"] != OST_SUCCESS:
                    raise RuntimeError(f"the guest could not online CPU {index}: {event.data}")
                online.append(event.timestamp - t0)
                recorder.wait_for(ev.CONSOLE, is_masks)  # the guest is idle again
                t0 = time.time()
                machine.device_del(device)
                event = recorder.wait_for(ev.DEVICE_DELETED,
                                          lambda e, d=device: e.data["device"] == d)
                deleted.append(event.timestamp - t0)
                recorder.wait_for(ev.CONSOLE, is_masks)
        elapsed = time.perf_counter() - started
        gc.collect()
        end_stats, end_rss = machine.backend_stats(), rss_kib()
        machine.check_invariants()
        return {
            "cycles": cycles,
            "cycles_per_second": round(cycles / elapsed, 1),
            "device_add_call": ms(calls),
            "device_add_to_powered_on": ms(powered),
            "device_add_to_guest_online": ms(online),
            "device_del_to_device_deleted": ms(deleted),
            "samples_s": {"online": online, "deleted": deleted},
            "rss_kib_before": start_rss,
            "rss_kib_after": end_rss,
            "counts_back_to_start": all(start_stats[k] == end_stats[k] for k in LIVE)
            and threading.active_count() == start_threads,
        }
    finally:
        machine.shutdown()


def bench_idle(seconds: float) -> dict[str, Any]:
    """Process CPU over wall with cpus=4, every CPU online and sleeping between ticks."""
    machine = VirtMachine(MachineConfig.build("cpus=4,maxcpus=4", accel="tcg-unicorn"))
    machine.realize()
    try:
        wait_for(lambda: "possible 0-3 present 0-3 enabled 0-3 online 0-3" in machine.console,
                 "every CPU online")
        time.sleep(0.5)
        stats = machine.backend_stats()
        wall, cpu = time.perf_counter(), time.process_time()
        time.sleep(seconds)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        irqs = machine.backend_stats()["total_irqs_delivered"] - stats["total_irqs_delivered"]
        return {"seconds": round(wall, 2), "cpu_fraction_of_one_core": round(cpu / wall, 5),
                "interrupts_per_second": round(irqs / wall, 1),
                "online": sorted(machine.cpu_masks().online)}
    finally:
        machine.shutdown()


def bench_timer(wakes: int, tmp: Path) -> list[float]:
    """Microseconds after CVAL at which a guest in wfi woke, ``wakes`` times (2 ms each)."""
    image = tmp / "timer.bin"
    image.write_bytes(timer_guest(wakes).assemble())
    machine = VirtMachine(MachineConfig.build("cpus=1,maxcpus=1", accel="tcg-unicorn",
                                              kernel=image))
    machine.realize()
    try:
        assert machine.memory is not None
        memory = machine.memory
        wait_for(lambda: memory.read_int(RESULTS + DONE, 8) == DONE_MAGIC, "the timer wakes")
        return [memory.read_int(RESULTS + TIMER_LATE + 8 * n, 8) * COUNTER_NS / 1e3
                for n in range(wakes)]
    finally:
        machine.shutdown()


# -- the run -------------------------------------------------------------------------------------


def repetition(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Every figure once."""
    load_before = load()
    one = bench_counting(1, args.seconds, tmp)
    two = bench_counting(2, args.seconds, tmp)
    unicorn_seconds = unicorn_timed_loop(args.iterations, tmp)
    qemu = qemu_timed_loop(args.iterations, tmp)
    hotplug = bench_hotplug(args.cycles)
    idle = bench_idle(args.idle_seconds)
    timer = bench_timer(args.timer_wakes, tmp)
    instructions = args.iterations * LOOP_INSNS
    speed: dict[str, Any] = {"unicorn_seconds": round(unicorn_seconds, 4),
                             "unicorn_instructions_per_second": round(instructions
                                                                      / unicorn_seconds)}
    if "seconds" in qemu:
        speed.update(qemu_seconds=round(qemu["seconds"], 4),
                     qemu_instructions_per_second=round(instructions / qemu["seconds"]),
                     unicorn_over_qemu=round(qemu["seconds"] / unicorn_seconds, 3),
                     qemu=qemu["qemu"])
    else:
        speed["qemu_skipped"] = qemu["skipped"]
    return {
        "load_before": load_before,
        "load_after": load(),
        "speed": speed,
        "one_busy_vcpu": one,
        "two_busy_vcpus": two,
        "two_over_one": round(two["instructions_per_second"] / one["instructions_per_second"], 3),
        "hotplug": hotplug,
        "idle": idle,
        "timer_wakeup_error_us": [round(x, 1) for x in timer],
    }


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Best / median / worst / spread of every figure over the repetitions."""
    figures: dict[str, Any] = {}
    speeds = [r["speed"]["unicorn_over_qemu"] for r in runs if "unicorn_over_qemu" in r["speed"]]
    if speeds:
        figures["one_vcpu_over_qemu"] = summary(speeds, higher_is_better=True)
    figures["two_vcpus_over_one"] = summary([r["two_over_one"] for r in runs], True)
    figures["two_vcpus_process_cpu_over_wall"] = summary(
        [r["two_busy_vcpus"]["process_cpu_over_wall"] for r in runs], True)
    figures["two_vcpus_min_runnable_fraction"] = summary(
        [min(r["two_busy_vcpus"]["vcpu_runnable_fraction"]) for r in runs], True)
    for key in ("device_add_to_powered_on", "device_add_to_guest_online",
                "device_del_to_device_deleted"):
        for stat in ("median_ms", "p99_ms"):
            figures[f"{key}_{stat}"] = summary([r["hotplug"][key][stat] for r in runs], False)
    online = [s for r in runs for s in r["hotplug"]["samples_s"]["online"]]
    deleted = [s for r in runs for s in r["hotplug"]["samples_s"]["deleted"]]
    figures["pooled_device_add_to_guest_online"] = ms(online)
    figures["pooled_device_del_to_device_deleted"] = ms(deleted)
    figures["idle_cpu_fraction"] = summary(
        [r["idle"]["cpu_fraction_of_one_core"] for r in runs], False)
    timers = [r["timer_wakeup_error_us"] for r in runs]
    figures["timer_wakeup_error_median_us"] = summary([statistics.median(t) for t in timers],
                                                      False)
    pooled = [x for t in timers for x in t]
    figures["pooled_timer_wakeup_error_us"] = {
        "median": round(statistics.median(pooled), 1),
        "p99": round(percentile(pooled, 0.99), 1), "max": round(max(pooled), 1),
        "samples": len(pooled)}
    return figures


def print_report(result: dict[str, Any]) -> None:
    figures, runs = result["figures"], result["runs"]
    loads = [r["load_before"][0] for r in runs] + [r["load_after"][0] for r in runs]
    print(f"{len(runs)} repetitions on {result['host']['cpus']} cores; 1-minute load "
          f"{min(loads)}-{max(loads)}; {result['host']['autogroup']}")
    print(f"{'figure':44s} {'best':>10s} {'median':>10s} {'worst':>10s} {'spread':>7s}")
    for name, row in figures.items():
        if "best" in row:
            print(f"{name:44s} {row['best']:10} {row['median']:10} {row['worst']:10} "
                  f"{row['spread']:7.0%}")
    for name in ("pooled_device_add_to_guest_online", "pooled_device_del_to_device_deleted"):
        row = figures[name]
        print(f"{name:44s} median {row['median_ms']} ms, p99 {row['p99_ms']} ms, "
              f"max {row['max_ms']} ms ({row['samples']} samples)")
    row = figures["pooled_timer_wakeup_error_us"]
    print(f"{'pooled_timer_wakeup_error_us':44s} median {row['median']}, p99 {row['p99']}, "
          f"max {row['max']} ({row['samples']} wakes)")
    last = runs[-1]
    if "qemu" in last["speed"]:
        print(f"QEMU: {last['speed']['qemu']}")
    else:
        print(f"QEMU: {last['speed']['qemu_skipped']}")
    print("two busy vCPUs, runnable fraction per vCPU thread: "
          f"{[r['two_busy_vcpus']['vcpu_runnable_fraction'] for r in runs]}")
    print(f"counts back to start after the cycles: "
          f"{all(r['hotplug']['counts_back_to_start'] for r in runs)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of every figure")
    parser.add_argument("--cycles", type=int, default=300,
                        help="plug/unplug cycles per repetition")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="measuring time of each counting run")
    parser.add_argument("--iterations", type=int, default=100_000_000,
                        help="turns of the timed loop (3 instructions each)")
    parser.add_argument("--idle-seconds", type=float, default=5.0,
                        help="wall time of each idle measurement")
    parser.add_argument("--timer-wakes", type=int, default=50,
                        help="timer wake-ups measured per repetition")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "unicorn.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        runs = []
        for n in range(args.repeat):
            print(f"repetition {n + 1}/{args.repeat} (load {load()})", flush=True)
            runs.append(repetition(args, Path(directory)))
    figures = aggregate(runs)  # the pooled figures need the samples, dropped below
    for run in runs:
        del run["hotplug"]["samples_s"]
    result = {
        "host": {"machine": platform.machine(), "python": platform.python_version(),
                 "cpus": len(os.sched_getaffinity(0)), "autogroup": autogroup()},
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "figures": figures,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
