"""The seed scenario with Linux as the guest: the masks Linux itself shows in sysfs.

``vcpuhp demo --linux KERNEL INITRD`` boots an arm64 Linux kernel (≥ 6.11,
e.g. Debian trixie's) with the test userland
(:mod:`vcpuhp.testing.linux_userland`; ``python3 -m
vcpuhp.testing.linux_userland --busybox …`` builds it), then scripts the
seeds' session: ``device_add`` of the first free core, ``echo 1 >
/sys/devices/system/cpu/cpuN/online`` typed at the guest's console,
``device_del``. Every ``guest|`` line is the guest's console; the masks on it
are what the userland read from Linux's sysfs after each step.
"""

from __future__ import annotations

import time
from typing import Final, TextIO

from vcpuhp import events as ev
from vcpuhp.errors import ConfigError, VcpuhpError
from vcpuhp.machine import VirtMachine
from vcpuhp.plugins import PluginManager
from vcpuhp.testing.linux_userland import GuestDied, UserlandConsole

LINUX_APPEND: Final = "console=ttyAMA0 earlycon maxcpus=2 quiet panic=-1"
"""The guest command line unless ``--append`` says otherwise: the seeds' ``maxcpus=2``;
``quiet`` keeps the kernel's boot log off the console, which under emulation costs as
much time as the rest of the boot; ``earlycon`` shows a panic that comes before the
UART driver, and ``panic=-1`` makes it a PSCI ``SYSTEM_RESET``, which ends the demo at
once with the reason (on a backend that cannot run Linux yet, rather than a long wait)."""
BOOT_TIMEOUT: Final = 900.0
STEP_TIMEOUT: Final = 180.0
LINUX_BACKENDS: Final = ("kvm",)
"""Backends that run Linux today, preferred in this order when ``--accel`` is not given."""


def preferred_accel(plugins: PluginManager, fallback: str) -> str:
    """The first viable backend of :data:`LINUX_BACKENDS`, else ``fallback``."""
    for row in plugins.backends.describe():
        if row["name"] in LINUX_BACKENDS and row["viable"]:
            return str(row["name"])
    return fallback


def run_linux_demo(machine: VirtMachine, out: TextIO, cycles: int = 1) -> int:
    """Realize ``machine`` (booting Linux with the test userland) and run the scenario.

    The guest's console lines are the caller's to print (subscribe a printer
    before calling: the steps printed here then follow the lines they waited for).

    0 on success; 1, with the reason printed, when Linux did not answer (a
    panic, a timeout) or a step was refused. :class:`ConfigError` before anything
    runs when the backend does not execute guest code. The caller shuts the
    machine down.
    """
    if not machine.backend.capabilities.executes_guest_code:
        raise ConfigError(
            f"demo --linux needs a backend that runs guest code; {machine.backend.name!r} "
            f"does not (use --accel {LINUX_BACKENDS[0]} on an arm64 host with /dev/kvm, or "
            "python3 tools/arm64host/run.py linux-demo on any other)")
    free = [v for v in machine.vcpus if not machine.topology.is_cold_booted(v.slot)]
    if not free:
        print("demo: every possible CPU is already enabled; raise maxcpus", file=out)
        return 1
    target = free[0]
    index, props, driver = target.slot.index, target.slot.props(), machine.config.cpu_type
    kernel = machine.config.kernel.name if machine.config.kernel is not None else "?"
    print(f"demo: Linux {kernel} with the test userland on {machine.backend.name}, "
          f"-smp {machine.config.smp}, guest '{machine.config.guest_cmdline}'",
          file=out, flush=True)
    console = UserlandConsole.attach(machine)
    try:
        started = time.perf_counter()
        machine.realize()
        console.wait_ready(BOOT_TIMEOUT)
        print(f"demo: Linux is up after {time.perf_counter() - started:.1f} s; "
              f"machine| {machine.cpu_masks()}", file=out, flush=True)
        for cycle in range(cycles):
            device_id = f"core{target.slot.core_id}" if cycles == 1 else f"cpu{cycle}"
            print(f"> device_add {driver},id={device_id},core-id={props['core-id']}",
                  file=out, flush=True)
            step = time.perf_counter()
            machine.device_add(driver, device_id, **props)
            console.wait_masks(lambda masks: index in masks.enabled, STEP_TIMEOUT)
            print(f"demo: Linux shows CPU {index} enabled after "
                  f"{(time.perf_counter() - step) * 1000:.0f} ms", file=out, flush=True)
            print(f"> (in the guest) echo 1 > /sys/devices/system/cpu/cpu{index}/online",
                  file=out, flush=True)
            result = console.online(index, STEP_TIMEOUT)
            if not result.ok:
                print(f"demo: Linux could not online CPU {index}: {result.reason}", file=out)
                return 1
            console.wait_masks(lambda masks: index in masks.online, STEP_TIMEOUT)
            print(f"> device_del {device_id}", file=out, flush=True)
            step = time.perf_counter()
            with machine.events.recorder() as recorder:
                machine.device_del(device_id)
                recorder.wait_for(ev.DEVICE_DELETED, lambda e: e.data["cpu_index"] == index,
                                  timeout=STEP_TIMEOUT)
            console.wait_masks(lambda masks: index not in masks.enabled, STEP_TIMEOUT)
            print(f"demo: Linux offlined and ejected CPU {index}: DEVICE_DELETED after "
                  f"{(time.perf_counter() - step) * 1000:.0f} ms; machine| "
                  f"{machine.cpu_masks()}", file=out, flush=True)
    except (TimeoutError, GuestDied, VcpuhpError) as exc:
        print(f"demo: failed: {exc}", file=out, flush=True)
        return 1
    finally:
        console.close()
    stats = ", ".join(f"{k}={v}" for k, v in machine.backend_stats().items()
                      if not isinstance(v, dict))
    print(f"demo: done; backend {machine.backend.name}: {stats}", file=out, flush=True)
    return 0


__all__ = ["LINUX_APPEND", "LINUX_BACKENDS", "preferred_accel", "run_linux_demo"]
