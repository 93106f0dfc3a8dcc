"""A guest that misbehaves gets clear errors, and the machine stays consistent."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from unicorn_testlib import read_i64, read_u64, require_unicorn, wait_until

require_unicorn()

from unicorn_guests import (  # noqa: E402
    BASE,
    COUNTER,
    CPU_ON_64,
    DONE,
    DONE_MAGIC,
    FAULTS,
    RESULTS,
    SECONDARY,
    mmio_writes,
    psci_calls,
    secondary_fault,
    write_image,
)

from vcpuhp import MachineConfig, memmap  # noqa: E402
from vcpuhp import events as ev  # noqa: E402
from vcpuhp.machine import VirtMachine  # noqa: E402
from vcpuhp.psci import PsciReturn  # noqa: E402
from vcpuhp.vcpu import VcpuState  # noqa: E402
from vcpuhp_tcg_unicorn.backend import SERVICE_THREADS  # noqa: E402

MakeMachine = Callable[..., VirtMachine]
HOTPLUG = memmap.CPU_HOTPLUG.base


def finished(machine: VirtMachine) -> Callable[[], bool]:
    return lambda: read_u64(machine, RESULTS + DONE) == DONE_MAGIC


def keeps_counting(machine: VirtMachine) -> bool:
    start = read_u64(machine, RESULTS + COUNTER)
    wait_until(lambda: read_u64(machine, RESULTS + COUNTER) > start, what="boot CPU to count")
    return True


def states(machine: VirtMachine) -> list[VcpuState]:
    return [v.state for v in machine.vcpus]


def test_psci_calls_with_nonsense_arguments_get_error_codes(
    unicorn_machine: MakeMachine, tmp_path: Path
) -> None:
    calls: list[tuple[int | str, ...]] = [
        (0x8400_0000,),                                   # PSCI_VERSION
        (CPU_ON_64, 0xFFFF_FFFF_FFFF_FFFF, SECONDARY, 0),  # target outside the affinity fields
        (CPU_ON_64, 1, BASE + 2, 0),                      # unaligned entry point
        (CPU_ON_64, 1, 0x1000, 0),                        # entry point outside RAM
        (CPU_ON_64, 3, SECONDARY, 0),                     # CPU 3 is not enabled
        (0xC400_0004, 1, 7),                              # AFFINITY_INFO at level 7
        (0xDEAD_BEEF, 1, 2, 3),                           # unknown function
        (0x8400_0002,),                                   # CPU_OFF of the last online CPU
        (0x8400_000A, 0x12345),                           # PSCI_FEATURES of nonsense
        (CPU_ON_64, 1, SECONDARY, 0),                     # a good call
        (CPU_ON_64, 1, SECONDARY, 0),                     # ... made twice
    ]
    machine = unicorn_machine("cpus=2,maxcpus=4",
                              kernel=write_image(tmp_path, psci_calls(calls)))
    wait_until(finished(machine), what="the guest's PSCI script")
    results = [read_i64(machine, RESULTS + 8 * n) for n in range(len(calls))]
    assert results[:10] == [
        0x10001,
        PsciReturn.INVALID_PARAMETERS,
        PsciReturn.INVALID_ADDRESS,
        PsciReturn.INVALID_ADDRESS,
        PsciReturn.DENIED,
        PsciReturn.INVALID_PARAMETERS,
        PsciReturn.NOT_SUPPORTED,
        PsciReturn.DENIED,
        PsciReturn.NOT_SUPPORTED,
        PsciReturn.SUCCESS,
    ]
    assert results[10] in (PsciReturn.ALREADY_ON, PsciReturn.ON_PENDING)
    wait_until(lambda: machine.vcpus[1].online, what="CPU 1 online")
    assert keeps_counting(machine)
    assert states(machine)[2:] == [VcpuState.UNPLUGGED, VcpuState.UNPLUGGED]
    assert machine.backend_stats()["total_faults"] == 0
    machine.check_invariants()


def test_garbage_writes_to_the_hotplug_registers_change_nothing(
    unicorn_machine: MakeMachine, tmp_path: Path
) -> None:
    writes = [
        (HOTPLUG + 0x0, 4, 0xFFFF_FFFF),              # selector past the last CPU (legal) ...
        (HOTPLUG + 0x4, 1, 0x8),                      # ... makes this eject a no-op
        (HOTPLUG + 0x0, 4, 1),                        # select CPU 1 again
        (HOTPLUG + 0x4, 1, 0xFF),                     # flags with reserved bits
        (HOTPLUG + 0x5, 1, 0x77),                     # unknown command
        (HOTPLUG + 0x8, 4, 0x1234),                   # data without an OST command
        (HOTPLUG + 0x4, 4, 0x8),                      # flags as a dword
        (HOTPLUG + 0x0, 4, 0),                        # select CPU 0 ...
        (HOTPLUG + 0x4, 1, 0x8),                      # ... and eject the boot CPU
        (HOTPLUG + 0x0, 4, 3),                        # select CPU 3 (not plugged) ...
        (HOTPLUG + 0x4, 1, 0x8),                      # ... and eject it
        (HOTPLUG + 0x100, 4, 1),                      # past the 12-byte block
        (memmap.ACPI_GED.base, 4, 0xFFFF_FFFF),       # the GED selector is read-only
        (memmap.GICD.base + 0xF00, 4, 0xAB),          # no such distributor register
    ]
    errors: list[str] = []
    machine = unicorn_machine("cpus=2,maxcpus=4", kernel=write_image(tmp_path, mmio_writes([])))
    unsubscribe = machine.events.subscribe(
        lambda e: errors.append(e.data["message"]) if e.name == ev.GUEST_ERROR else None
    )
    wait_until(finished(machine), what="idle guest")
    before = [v.state_dict() for v in machine.vcpus]
    machine.shutdown()
    unsubscribe()

    machine = unicorn_machine("cpus=2,maxcpus=4",
                              kernel=write_image(tmp_path, mmio_writes(writes), "garbage.bin"))
    machine.events.subscribe(
        lambda e: errors.append(e.data["message"]) if e.name == ev.GUEST_ERROR else None
    )
    wait_until(finished(machine), what="the guest's writes")
    assert keeps_counting(machine)
    machine.events.flush()
    text = "\n".join(errors)
    for words in ("sets reserved bits",
                  "unknown command 119", "has no effect", "is not a register",
                  "eject refused", "no device or RAM at 0x90c0100", "GED: write",
                  "unknown GICD offset 0xf00"):
        assert words in text, f"no guest error mentions {words!r}:\n{text}"
    assert [v.state_dict() for v in machine.vcpus] == before
    assert machine.cpu_hotplug.selector == 3
    assert machine.backend_stats()["total_faults"] == 0
    machine.check_invariants()


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("undefined", r"undefined instruction \(ESR 0x2000000\) from pc 0x402"),
        ("unmapped", r"data abort \(read at 0x1000\) \(ESR 0x96000010\) from pc 0x402"),
        ("smc", r"smc .*PSCI conduit is hvc\) \(ESR 0x2000000\) from pc 0x402"),
        ("unknown sysreg", r"undefined instruction \(ESR 0x2000000\) from pc 0x402"),
    ],
)
def test_an_exception_without_a_vector_table_stops_that_vcpu_only_and_says_why(
    unicorn_machine: MakeMachine, tmp_path: Path, kind: str, message: str
) -> None:
    assert kind in FAULTS
    threads = threading.active_count()
    with_faults: list[ev.MachineEvent] = []
    program = secondary_fault(kind)
    machine = unicorn_machine("cpus=2,maxcpus=4", kernel=write_image(tmp_path, program))
    machine.events.subscribe(lambda e: with_faults.append(e) if e.name == ev.VCPU_FAULT else None)
    wait_until(lambda: bool(with_faults), what="VCPU_FAULT")
    fault = with_faults[0]
    assert fault.data["cpu_index"] == 1
    assert fault.data["message"].startswith("CPU 1 stopped: VcpuFault: cannot deliver ")
    assert re.search(message, fault.data["message"]), fault.data["message"]
    assert "its vector faulted (instruction abort at 0x200)" in fault.data["message"]
    assert read_i64(machine, RESULTS) == PsciReturn.SUCCESS  # the CPU_ON itself worked
    assert machine.vcpus[1].state is VcpuState.POWERED_OFF
    assert keeps_counting(machine)
    stats = machine.backend_stats()
    assert (stats["threads"], stats["total_faults"]) == (2, 1)
    assert threading.active_count() == threads + 2 + SERVICE_THREADS + 1  # the event thread
    machine.check_invariants()
    # The faulted CPU can be started again (and faults again, the same way).
    assert machine.psci_call(0, CPU_ON_64, 1, program.address("fault"), 0) == 0
    wait_until(lambda: len(with_faults) == 2, what="second VCPU_FAULT")
    assert machine.vcpus[1].state is VcpuState.POWERED_OFF
    machine.check_invariants()


def test_a_bug_in_a_hook_surfaces_as_a_vcpu_fault_with_the_original_error(
    tmp_path: Path,
) -> None:
    image = write_image(tmp_path, mmio_writes([(memmap.UART.base + 0x40, 4, 7)]))
    faults: list[ev.MachineEvent] = []

    def broken_write(offset: int, size: int, value: int) -> None:
        raise RuntimeError(f"injected bug at UART offset {offset:#x}")

    machine = VirtMachine(MachineConfig.build("cpus=1,maxcpus=2", accel="tcg-unicorn",
                                              kernel=image))
    machine.uart.write = broken_write  # type: ignore[method-assign]
    machine.events.subscribe(lambda e: faults.append(e) if e.name == ev.VCPU_FAULT else None)
    try:
        machine.realize()
        wait_until(lambda: bool(faults), what="VCPU_FAULT from the hook bug")
        assert faults[0].data == {
            "cpu_index": 0,
            "message": "CPU 0 stopped: RuntimeError: injected bug at UART offset 0x40",
        }
        assert machine.vcpus[0].state is VcpuState.POWERED_OFF
        assert machine.backend_stats()["threads"] == 1  # idle, not dead, not hung
        machine.check_invariants()
    finally:
        machine.shutdown()
    assert machine.backend.stats()["threads"] == 0
