"""Benchmark: hotplug with Linux as the guest, next to the bundled guest, on the kvm backend.

    python3 tools/arm64host/run.py run -- python3 bench/bench_linux.py [--cycles 20]
        [--boots 3] [--out bench/results/linux.json]

Not a test: prints numbers and writes JSON. Needs a usable arm64 KVM and the L2
files (``VCPUHP_TEST_KERNEL``, ``_BUSYBOX``, ``_EVDEV``: set inside the emulated
host, where every figure is far slower than on arm64 metal; compare the two
guests, not the absolute times). Machine ``cpus=4,maxcpus=6``, guest
``maxcpus=2``, core 4 plugged and unplugged ``--cycles`` times. For each guest:

* **boot to shell**: ``realize()`` -> Linux's userland prints ``userland ready``
  (kernel command line ``console=ttyAMA0 maxcpus=2 quiet``) / the bundled guest
  prints its first masks line;
* **device_add -> enabled**: the call -> Linux's masks line shows the CPU
  enabled (its userland, woken by the CPU's uevent, read sysfs) / the bundled
  guest sets the CPU's enabled byte on its status page;
* **online -> running**: Linux: ``online 4`` typed at the console -> the vCPU
  runs (``CPU_POWERED_ON``), and -> Linux answers ``online 4 ok``; bundled
  guest: enabled byte -> the vCPU runs (it sends ``CPU_ON`` right after);
* **device_del -> DEVICE_DELETED** (Linux offlines the CPU itself first).

Measured (Debian 6.12 guest and host, emulated host on a shared 2-core x86
machine, load 2.5-4.7; 3 boots x 20 cycles per guest, two runs):

| step | Linux median / p99 | bundled guest median / p99 |
|---|---|---|
| boot to shell | 8.7-11.3 s | 0.37-0.41 s |
| device_add -> enabled | 131-174 ms / 460-659 ms | 19-26 ms / 94-134 ms |
| online -> running (vCPU) | 70-76 ms / 169-266 ms | 5-11 ms / 13-79 ms |
| online -> Linux says ok | 158-184 ms / 375-535 ms | (no such step) |
| device_del -> DEVICE_DELETED | 176-230 ms / 332-470 ms | 34-60 ms / 53-170 ms |
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vcpuhp import MachineConfig, VirtMachine, memmap
from vcpuhp import events as ev
from vcpuhp.plugin_settings import PluginSettings
from vcpuhp.testing.linux_userland import UserlandConsole, build_initramfs, read_module

SMP = "cpus=4,maxcpus=6"
CPU = 4
LINUX_APPEND = "console=ttyAMA0 maxcpus=2 quiet"
BOOT_TIMEOUT = 900.0
STEP_TIMEOUT = 180.0
STATUS = memmap.GUEST_STATUS_ADDR
BUNDLED_ENABLED = STATUS + 0x220
"""The bundled guest's per-CPU enabled bytes (``vcpuhp-core/guest/README.md``)."""


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def figures(samples: list[float]) -> dict[str, Any]:
    """Median, p99 and max in ms."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"median_ms": ms(statistics.median(ordered)), "p99_ms": ms(p99),
            "max_ms": ms(ordered[-1]), "samples": len(ordered)}


def machine(**kwargs: Any) -> VirtMachine:
    return VirtMachine(MachineConfig.build(SMP, cpu="host", accel="kvm", memory="256M",
                                           plugins=PluginSettings(autoload=False), **kwargs))


def wait(condition: Callable[[], bool], what: str, timeout: float = STEP_TIMEOUT) -> float:
    """Poll ``condition`` every 0.5 ms; the time.time() it became true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout}s")
        time.sleep(0.0005)
    return time.time()


def started_at(recorder: ev.EventRecorder, index: int) -> float:
    event = recorder.wait_for(ev.CPU_POWERED_ON, lambda e: e.data["cpu_index"] == index,
                              timeout=STEP_TIMEOUT)
    return event.timestamp


def deleted_at(recorder: ev.EventRecorder, index: int) -> float:
    event = recorder.wait_for(ev.DEVICE_DELETED, lambda e: e.data["cpu_index"] == index,
                              timeout=STEP_TIMEOUT)
    return event.timestamp


def linux_run(kernel: Path, initrd: Path, cycles: int) -> dict[str, Any]:
    """One Linux boot and ``cycles`` plug/online/unplug cycles."""
    vm = machine(kernel=kernel, initrd=initrd, guest_cmdline=LINUX_APPEND)
    console = UserlandConsole.attach(vm)
    steps: dict[str, list[float]] = {"device_add_to_enabled": [], "online_to_running": [],
                                     "online_to_linux_ok": [], "device_del_to_deleted": []}
    try:
        t0 = time.perf_counter()
        vm.realize()
        console.wait_ready(BOOT_TIMEOUT)
        boot = time.perf_counter() - t0
        for n in range(cycles):
            device = f"cpu{n}"
            with vm.events.recorder() as recorder:
                t0 = time.time()
                vm.device_add("host-arm-cpu", device, **{"core-id": CPU})
                console.wait_masks(lambda m: CPU in m.enabled, STEP_TIMEOUT)
                steps["device_add_to_enabled"].append(time.time() - t0)
                t0 = time.time()
                result = console.online(CPU, STEP_TIMEOUT)
                answered = time.time()
                assert result.ok, result
                steps["online_to_running"].append(started_at(recorder, CPU) - t0)
                steps["online_to_linux_ok"].append(answered - t0)
                t0 = time.time()
                vm.device_del(device)
                steps["device_del_to_deleted"].append(deleted_at(recorder, CPU) - t0)
                console.wait_masks(lambda m: CPU not in m.enabled, STEP_TIMEOUT)
        return {"boot_to_shell_s": round(boot, 2), "steps": steps}
    finally:
        console.close()
        vm.shutdown()


def bundled_run(cycles: int) -> dict[str, Any]:
    """One bundled-guest boot and ``cycles`` plug/unplug cycles (it onlines by itself)."""
    vm = machine(guest_cmdline="maxcpus=2")
    steps: dict[str, list[float]] = {"device_add_to_enabled": [], "online_to_running": [],
                                     "device_del_to_deleted": []}
    try:
        t0 = time.perf_counter()
        vm.realize()
        wait(lambda: any(line.startswith("possible ") for line in vm.console), "boot",
             BOOT_TIMEOUT)
        boot = time.perf_counter() - t0
        assert vm.memory is not None
        memory = vm.memory
        for n in range(cycles):
            device = f"cpu{n}"
            with vm.events.recorder() as recorder:
                t0 = time.time()
                vm.device_add("host-arm-cpu", device, **{"core-id": CPU})
                enabled = wait(lambda: bool(memory.read_int(BUNDLED_ENABLED + CPU, 1)),
                               "the guest marks the CPU enabled")
                steps["device_add_to_enabled"].append(enabled - t0)
                steps["online_to_running"].append(started_at(recorder, CPU) - enabled)
                t0 = time.time()
                vm.device_del(device)
                steps["device_del_to_deleted"].append(deleted_at(recorder, CPU) - t0)
        return {"boot_to_shell_s": round(boot, 2), "steps": steps}
    finally:
        vm.shutdown()


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    boots = [run["boot_to_shell_s"] for run in runs]
    names = runs[0]["steps"].keys()
    return {
        "boot_to_shell_s": {"median": round(statistics.median(boots), 2),
                            "max": max(boots), "samples": len(boots)},
        **{name: figures([x for run in runs for x in run["steps"][name]]) for name in names},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20, help="cycles per boot")
    parser.add_argument("--boots", type=int, default=3, help="boots per guest")
    parser.add_argument("--out", type=Path, default=Path("bench/results/linux.json"))
    args = parser.parse_args()
    kernel = Path(os.environ["VCPUHP_TEST_KERNEL"])
    with tempfile.TemporaryDirectory() as scratch:
        initrd = Path(scratch) / "userland.cpio"
        initrd.write_bytes(build_initramfs(
            Path(os.environ["VCPUHP_TEST_BUSYBOX"]).read_bytes(),
            [read_module(Path(os.environ["VCPUHP_TEST_EVDEV"]))]))
        bundled_run(1)  # warm-up: imports, cffi, the image read
        linux = [linux_run(kernel, initrd, args.cycles) for _ in range(args.boots)]
        bundled = [bundled_run(args.cycles) for _ in range(args.boots)]
    results = {"machine": platform.machine(), "kernel": platform.release(),
               "smp": SMP, "cpu": CPU, "cycles_per_boot": args.cycles, "boots": args.boots,
               "linux": summarize(linux), "bundled": summarize(bundled)}
    print(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
