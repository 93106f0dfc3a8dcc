"""The seed scenario, scripted: plug a CPU, watch the guest online it, unplug it.

With ``cpus=4,maxcpus=6`` and guest ``maxcpus=2`` the masks go
``enabled 0-3 online 0-1`` → (plug core 4) ``enabled 0-4 online 0-1,4`` →
(unplug) ``enabled 0-3 online 0-1``. On an executing backend the guest prints
them itself on its console; the machine's own view is printed after each step.
"""

from __future__ import annotations

import time
from typing import TextIO

from vcpuhp import events as ev
from vcpuhp.machine import VirtMachine
from vcpuhp.masks import CpuMasks

STEP_TIMEOUT = 60.0


def _settle(machine: VirtMachine, recorder: ev.EventRecorder, name: str, index: int) -> float:
    """Wait for the machine event, then (on an executing backend) for the guest to print
    masks that agree with the machine's; returns the seconds until the event."""
    started = time.perf_counter()
    recorder.wait_for(name, lambda e: e.data.get("cpu_index") == index, timeout=STEP_TIMEOUT)
    took = time.perf_counter() - started
    if machine.backend.capabilities.executes_guest_code:
        expected = machine.cpu_masks()
        recorder.wait_for(ev.CONSOLE, lambda e: _masks_line(e.data["line"]) == expected,
                          timeout=STEP_TIMEOUT)
    return took


def _masks_line(line: str) -> CpuMasks | None:
    if not line.startswith("possible "):
        return None
    try:
        return CpuMasks.parse(line)
    except ValueError:
        return None


def run_demo(machine: VirtMachine, out: TextIO, cycles: int = 1) -> int:
    """Run the scenario on a realized machine whose guest answers hotplug; 0 on success."""
    free = [v for v in machine.vcpus if not v.enabled]
    if not free:
        print("demo: every possible CPU is already enabled; raise maxcpus", file=out)
        return 1
    target = free[0]
    props = target.slot.props()
    driver = machine.config.cpu_type
    print(f"demo: accel={machine.backend.name} -smp {machine.config.smp} "
          f"guest '{machine.config.guest_cmdline}'", file=out, flush=True)
    _wait_for_boot(machine)
    print(f"machine| {machine.cpu_masks()}", file=out, flush=True)
    for cycle in range(cycles):
        device_id = f"core{target.slot.core_id}" if cycles == 1 else f"cpu{cycle}"
        with machine.events.recorder() as recorder:
            print(f"> device_add {driver},id={device_id},core-id={props['core-id']}",
                  file=out, flush=True)
            machine.device_add(driver, device_id, **props)
            took = _settle(machine, recorder, ev.CPU_POWERED_ON, target.slot.index)
            print(f"machine| {machine.cpu_masks()}   (guest online after {took * 1000:.1f} ms)",
                  file=out, flush=True)
            print(f"> device_del {device_id}", file=out, flush=True)
            machine.device_del(device_id)
            took = _settle(machine, recorder, ev.DEVICE_DELETED, target.slot.index)
            print(f"machine| {machine.cpu_masks()}   (DEVICE_DELETED after {took * 1000:.1f} ms)",
                  file=out, flush=True)
    stats = ", ".join(f"{k}={v}" for k, v in machine.backend_stats().items())
    print(f"demo: done; backend {machine.backend.name}: {stats}", file=out, flush=True)
    return 0


def _wait_for_boot(machine: VirtMachine, timeout: float = STEP_TIMEOUT) -> None:
    """Wait until the guest has onlined what it will online at boot."""
    deadline = time.monotonic() + timeout
    wanted = _boot_online_count(machine)
    while time.monotonic() < deadline:
        if len(machine.cpu_masks().online) >= wanted and (
            not machine.backend.capabilities.executes_guest_code or machine.console
        ):
            time.sleep(0.05)
            return
        time.sleep(0.01)
    raise TimeoutError(f"guest did not bring {wanted} CPUs online within {timeout}s")


def _boot_online_count(machine: VirtMachine) -> int:
    limit = len(machine.topology.cold_booted)
    for word in machine.config.guest_cmdline.split():
        key, _, value = word.partition("=")
        if key == "maxcpus" and value.isdigit():
            limit = min(limit, int(value))
    return max(limit, 1)
