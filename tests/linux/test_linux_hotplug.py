"""Linux 6.12 (Debian trixie) shows the seed transcript from its own sysfs.

The seeds: boot ``cpus=4,maxcpus=6`` with guest ``maxcpus=2`` → possible 0-5,
present 0-5, enabled 0-3, online 0-1; ``device_add`` of core 4 → enabled 0-4;
``echo 1 > /sys/devices/system/cpu/cpu4/online`` → online 0-1,4;
``device_del core4`` → Linux offlines and ejects it → ``DEVICE_DELETED``,
enabled 0-3, online 0-1. Every mask here is the one the guest's userland
read from sysfs and printed on the console.
"""

from __future__ import annotations

from typing import Any

from linux_testlib import STEP_TIMEOUT, LinuxGuest, masks, pull_event
from qemu.qmp.legacy import QEMUMonitorProtocol

from vcpuhp import events as ev
from vcpuhp.vcpu import VcpuState

SEED_BOOT = masks("possible 0-5 present 0-5 enabled 0-3 online 0-1")
PLUGGED = masks("possible 0-5 present 0-5 enabled 0-4 online 0-1")
ONLINE = masks("possible 0-5 present 0-5 enabled 0-4 online 0-1,4")
RESOURCES = ("parked", "vcpu_fds", "threads", "total_vcpus_created")


def resources(guest: LinuxGuest) -> dict[str, Any]:
    """The resource counts that must come back after an unplug."""
    stats = guest.machine.backend_stats()
    return {key: stats[key] for key in RESOURCES if key in stats}


def plug_online_unplug(guest: LinuxGuest, client: QEMUMonitorProtocol) -> None:
    """One seed cycle, checking the guest's masks after every step."""
    client.cmd("device_add", driver=guest.config.cpu_type, id="core4", **{"core-id": 4})
    guest.wait_masks(PLUGGED)
    result = guest.online(4)
    assert result.ok, result
    guest.wait_masks(ONLINE)
    assert guest.machine.vcpu(4).state is VcpuState.ONLINE
    client.cmd("device_del", id="core4")
    deleted = pull_event(client, "DEVICE_DELETED")
    assert deleted["data"]["device"] == "core4"
    guest.wait_masks(SEED_BOOT)
    assert guest.machine.vcpu(4).state is VcpuState.UNPLUGGED


def test_linux_boots_with_the_seed_masks_and_no_firmware_complaint(
    seed_linux: LinuxGuest,
) -> None:
    assert seed_linux.baseline == SEED_BOOT
    assert seed_linux.machine.cpu_masks() == SEED_BOOT
    klog = seed_linux.console.wait_klog(STEP_TIMEOUT)
    # no ACPI Error / ACPI BIOS Error / Firmware Bug (or Warning) line anywhere in the log;
    # klog holds every warning and error too, shown if this fails
    assert seed_linux.console.firmware_complaints() == [], klog


def test_device_add_online_device_del_give_the_seed_transcript(seed_linux: LinuxGuest) -> None:
    before = resources(seed_linux)
    plug_online_unplug(seed_linux, seed_linux.qmp())
    assert resources(seed_linux) == before


def test_twenty_cycles_end_where_they_started(seed_linux: LinuxGuest) -> None:
    client = seed_linux.qmp()
    before = resources(seed_linux)
    for _ in range(20):
        plug_online_unplug(seed_linux, client)
    assert resources(seed_linux) == before
    assert seed_linux.machine.cpu_masks() == SEED_BOOT


def test_onlining_a_cpu_that_is_not_enabled_fails_in_linux_and_runs_no_vcpu(
    seed_linux: LinuxGuest,
) -> None:
    machine = seed_linux.machine
    before = machine.backend_stats()
    with machine.events.recorder() as recorder:
        never_plugged = seed_linux.online(5)
        client = seed_linux.qmp()
        client.cmd("device_add", driver=seed_linux.config.cpu_type, id="core4",
                   **{"core-id": 4})
        seed_linux.wait_masks(PLUGGED)
        client.cmd("device_del", id="core4")
        pull_event(client, "DEVICE_DELETED")
        seed_linux.wait_masks(SEED_BOOT)
        ejected = seed_linux.online(4)
        names = recorder.names()
    for cpu, result in ((5, never_plugged), (4, ejected)):
        assert not result.ok
        assert result.reason == (f"can't create /sys/devices/system/cpu/cpu{cpu}/online: "
                                 "nonexistent directory"), "Linux has no such CPU device"
    assert ev.CPU_POWERED_ON not in names, "no CPU_ON reached the machine"
    for index in (4, 5):
        assert machine.vcpu(index).state is VcpuState.UNPLUGGED
        # kvm parks every possible vCPU it pre-created; tcg-unicorn creates none for them
        parked = machine.vcpu(index).slot.arch_id in machine.parked
        assert parked is machine.backend.capabilities.parks_vcpus
    after = machine.backend_stats()
    assert after.get("threads") == before.get("threads"), "no vCPU thread runs for them"
    assert seed_linux.console.current == SEED_BOOT


def test_a_cpu_enabled_at_boot_that_linux_left_offline_comes_online_and_goes_back(
    seed_linux: LinuxGuest,
) -> None:
    assert seed_linux.online(2).ok
    seed_linux.wait_masks(masks("possible 0-5 present 0-5 enabled 0-3 online 0-2"))
    assert seed_linux.machine.vcpu(2).state is VcpuState.ONLINE
    assert seed_linux.offline(2).ok
    seed_linux.wait_masks(SEED_BOOT)
    assert seed_linux.machine.vcpu(2).state is VcpuState.POWERED_OFF
