"""The kvm backend under the machine, on a real arm64 KVM (collected only with
``--vcpuhp-backend=kvm``, see ``conftest.py``).

What realize builds (every possible vCPU, parked ones initialised powered off
with their MPIDR, the vGIC over the machine's regions), what it refuses, and
what a guest access to an address where nothing is mapped does: a
``GUEST_ERROR`` event and a synchronous external abort the guest handles,
after which the machine goes on. The bundled guest's scenarios are in
``test_kvm_guest.py``.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from guest_scenarios import read_u64, wait_until
from vcpuhp import events as ev
from vcpuhp import memmap
from vcpuhp.errors import ConfigError
from vcpuhp.gic import NUM_IRQS
from vcpuhp.machine import RunState, VirtMachine
from vcpuhp.vcpu import VcpuState
from vcpuhp_kvm import HostSupport, Kvm, KvmBackend, regs, uapi
from vcpuhp_kvm.runner import KvmVcpu

MakeMachine = Callable[..., VirtMachine]
SETTLE = 120.0
"""Seconds a test waits for a guest (generous: KVM inside TCG)."""

NOTHING_THERE = 0x0A00_0000
"""A guest-physical address with neither a device nor RAM in this machine's map."""
RESULTS = memmap.RAM_BASE + 0x30_0000
"""Where the abort guest counts its exceptions (u64) and records each one (64 bytes apart)."""
IMAGE_BASE = memmap.KERNEL_LOAD_ADDR
VECTORS = 0x800
SYNC_CURRENT_EL_SPX = 0x200
# Hand-assembled A64 (aarch64-linux-gnu-as gives the same words).
ABORT_GUEST = [
    0x10004009,  # 0x00 adr x9, vectors (+0x800)
    0xD518C009,  # 0x04 msr vbar_el1, x9
    0xD5033FDF,  # 0x08 isb
    0xD2A12002,  # 0x0c movz x2, #0x0900, lsl #16    x2 = PL011
    0xD2A14003,  # 0x10 movz x3, #0x0a00, lsl #16    x3 = NOTHING_THERE
    0x52800B44,  # 0x14 movz w4, #0x5a
    0xB9000064,  # 0x18 str w4, [x3]                 aborts
    0xB9400865,  # 0x1c ldr w5, [x3, #8]             aborts
    0x52800DE1,  # 0x20 movz w1, #'o'
    0x39000041,  # 0x24 strb w1, [x2]
    0x52800D61,  # 0x28 movz w1, #'k'
    0x39000041,  # 0x2c strb w1, [x2]
    0x52800141,  # 0x30 movz w1, #'\n'
    0x39000041,  # 0x34 strb w1, [x2]
    0xD503207F,  # 0x38 wfi
    0x17FFFFFF,  # 0x3c b 0x38
]
SYNC_HANDLER = [  # at vectors + 0x200: current EL with SP_ELx, synchronous
    0xD280002A,  # movz x10, #1                      proves the first instruction ran
    0xD538520B,  # mrs x11, esr_el1
    0xD538600C,  # mrs x12, far_el1
    0xD538402D,  # mrs x13, elr_el1
    0xD2A8060E,  # movz x14, #0x4030, lsl #16        x14 = RESULTS
    0xF94001CF,  # ldr x15, [x14]                    n = exceptions so far
    0x8B0F19D0,  # add x16, x14, x15, lsl #6
    0xF900220A,  # str x10, [x16, #64]               record n at RESULTS + 64 + 64 n
    0xF900260B,  # str x11, [x16, #72]
    0xF9002A0C,  # str x12, [x16, #80]
    0xF9002E0D,  # str x13, [x16, #88]
    0x91010211,  # add x17, x16, #64
    0xD50B7E31,  # dc civac, x17
    0x910005EF,  # add x15, x15, #1
    0xF90001CF,  # str x15, [x14]
    0xD50B7E2E,  # dc civac, x14
    0x910011AD,  # add x13, x13, #4                  resume after the access
    0xD518402D,  # msr elr_el1, x13
    0xD69F03E0,  # eret
]
ESR_EC_DABT_CURRENT_EL = 0x25
DFSC_SYNC_EXTERNAL_ABORT = 0x10


def abort_guest_image(directory: Path) -> Path:
    words = ABORT_GUEST + [0xD503201F] * ((VECTORS + SYNC_CURRENT_EL_SPX) // 4
                                          - len(ABORT_GUEST)) + SYNC_HANDLER
    path = directory / "abort-guest.bin"
    path.write_bytes(struct.pack(f"<{len(words)}I", *words))
    return path


def test_realize_creates_every_possible_vcpu_and_parks_the_ones_not_plugged(
    kvm_machine: MakeMachine,
) -> None:
    machine = kvm_machine("cpus=2,maxcpus=8", guest_cmdline="maxcpus=2")
    backend = machine.backend
    assert isinstance(backend, KvmBackend)
    stats = machine.backend_stats()
    assert (stats["vcpu_fds"], stats["total_vcpus_created"], stats["threads"],
            stats["parked"]) == (8, 8, 2, 6)
    assert stats["ipa_bits"] == 32
    assert backend.vgic is not None
    assert backend.vgic.distributor_base() == memmap.GICD.base
    assert backend.vgic.redistributor_region(0) == (memmap.GICR_REGION0.base, 8)
    assert backend.vgic.nr_irqs() == NUM_IRQS
    for handle in machine.parked.handles().values():
        assert isinstance(handle, KvmVcpu)
        assert handle.thread is None
        fd = handle.fd
        assert fd.get_one_reg(regs.MPIDR_EL1) == handle.slot.mpidr
        assert fd.get_mp_state() == uapi.KVM_MP_STATE_STOPPED
    threads = {row["cpu-index"]: row["thread-id"] for row in machine.query_cpus_fast()}
    assert threads == {i: backend.vcpus[i].thread_id for i in (0, 1)}
    assert len(set(threads.values())) == 2
    machine.check_invariants()


def test_a_cpu_model_kvm_cannot_provide_is_refused_and_the_machine_is_unchanged(
    kvm_machine: MakeMachine,
) -> None:
    machine = kvm_machine("cpus=1,maxcpus=2", cpu="cortex-a57", realize=False)
    before = machine.snapshot_bytes()
    with pytest.raises(ConfigError, match="use --cpu host"):
        machine.realize()
    assert machine.run_state is RunState.PRELAUNCH
    assert machine.snapshot_bytes() == before
    assert machine.backend_stats()["vcpu_fds"] == 0


def test_maxcpus_above_the_kvm_limit_is_refused_naming_the_limit(
    kvm_machine: MakeMachine, kvm_host: HostSupport, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # This host's KVM allows 512 vCPUs, as many as the machine can have: stand in a
    # smaller KVM_CAP_MAX_VCPUS (what a host with fewer reports) to reach the check.
    monkeypatch.setattr(Kvm, "max_vcpus", lambda self: 8)
    machine = kvm_machine("cpus=1,maxcpus=9", realize=False)
    before = machine.snapshot_bytes()
    with pytest.raises(ConfigError, match=r"maxcpus=9 is more vCPUs than this host's KVM "
                                          r"allows: at most 8 \(KVM_CAP_MAX_VCPUS 8, "
                                          rf"KVM_CAP_MAX_VCPU_ID {kvm_host.max_vcpu_id}\)"):
        machine.realize()
    assert machine.run_state is RunState.PRELAUNCH
    assert machine.snapshot_bytes() == before
    assert machine.backend_stats()["vcpu_fds"] == 0


def test_an_access_where_nothing_is_mapped_aborts_in_the_guest_and_the_machine_goes_on(
    kvm_machine: MakeMachine, tmp_path: Path,
) -> None:
    machine = kvm_machine("cpus=1,maxcpus=2", kernel=abort_guest_image(tmp_path),
                          realize=False)
    with machine.events.recorder() as recorder:
        machine.realize()
        errors = [recorder.wait_for(ev.GUEST_ERROR, timeout=SETTLE) for _ in range(2)]
        recorder.wait_for(ev.CONSOLE, lambda e: e.data["line"] == "ok", timeout=SETTLE)
    assert [e.data["message"] for e in errors] == [
        f"CPU 0: write of 4 bytes at {NOTHING_THERE:#x}: no device or RAM at "
        f"{NOTHING_THERE:#x} (4 bytes); synchronous external abort injected",
        f"CPU 0: read of 4 bytes at {NOTHING_THERE + 8:#x}: no device or RAM at "
        f"{NOTHING_THERE + 8:#x} (4 bytes); synchronous external abort injected",
    ]
    wait_until(lambda: read_u64(machine, RESULTS) == 2, SETTLE, "the guest's exception count")
    for n, (addr, offset) in enumerate([(NOTHING_THERE, 0x18), (NOTHING_THERE + 8, 0x1C)]):
        record = RESULTS + 64 + 64 * n
        esr = read_u64(machine, record + 8)
        assert read_u64(machine, record) == 1, "the vector's first instruction did not run"
        assert esr >> 26 == ESR_EC_DABT_CURRENT_EL, hex(esr)
        assert esr & 0x3F == DFSC_SYNC_EXTERNAL_ABORT, hex(esr)
        assert read_u64(machine, record + 16) == addr  # FAR_EL1
        assert read_u64(machine, record + 24) == IMAGE_BASE + offset  # ELR_EL1: the access
    stats = machine.backend_stats()
    assert (stats["total_external_aborts"], stats["total_faults"]) == (2, 0)
    assert machine.vcpus[0].state is VcpuState.ONLINE
    # the machine goes on: a plug works (this guest does not online the CPU)
    machine.device_add("host-arm-cpu", "core1", **{"core-id": 1})
    assert machine.cpu_masks().enabled == {0, 1}
    machine.check_invariants()


SYSTEM_OFF_GUEST = [
    0xD2800100,  # 0x00 movz x0, #0x8
    0xF2B08000,  # 0x04 movk x0, #0x8400, lsl #16    x0 = PSCI SYSTEM_OFF
    0xD4000002,  # 0x08 hvc #0
    0xD2A12002,  # 0x0c movz x2, #0x0900, lsl #16    only if the vCPU ran on: print "X"
    0x52800B01,  # 0x10 movz w1, #'X'
    0x39000041,  # 0x14 strb w1, [x2]
    0x52800141,  # 0x18 movz w1, #'\n'
    0x39000041,  # 0x1c strb w1, [x2]
    0x14000000,  # 0x20 b .
]


def test_a_guest_system_off_leaves_its_vcpu_idle_not_running(
    kvm_machine: MakeMachine, tmp_path: Path,
) -> None:
    image = tmp_path / "system-off.bin"
    image.write_bytes(struct.pack(f"<{len(SYSTEM_OFF_GUEST)}I", *SYSTEM_OFF_GUEST))
    machine = kvm_machine("cpus=2,maxcpus=2", kernel=image, realize=False)
    with machine.events.recorder() as recorder:
        machine.realize()
        shutdown = recorder.wait_for(ev.SHUTDOWN, timeout=SETTLE)
    assert shutdown.data == {"guest": True, "reason": "guest-shutdown"}
    assert machine.run_state is RunState.SHUTDOWN
    backend = machine.backend
    assert isinstance(backend, KvmBackend)
    boot = backend.vcpus[0]
    assert boot.wait_until_stopped(SETTLE), "CPU 0 is still in KVM_RUN"
    assert boot.thread_alive  # idle, waiting for a CPU_ON that will not come
    time.sleep(0.2)
    assert "X" not in machine.console
    assert machine.backend_stats()["total_exits_hypercall"] == 1
