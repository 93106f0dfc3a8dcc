"""The bundled guest on real ``qemu-system-aarch64 -M virt``: architectural behaviour only.

The guest must run the same under tcg-unicorn and kvm, so it may rely on nothing
but the architecture: QEMU's GICv3 (SGIs, PPI 27, the GED SPI), its arch timer,
its PSCI over ``hvc`` and its GED stand in for KVM's vGIC, timer and the VMM.
QEMU gets the machine's ACPI tables (built by vcpuhp for the same topology) and
a four-instruction trampoline that enters the guest as vcpuhp's boot protocol
does (x0 = command line, x1 = RSDP). Checked: every CPU comes online (each one
wakes the boot CPU with an SGI), the secondaries' work counters count 10 Hz
timer ticks, and QMP ``system_powerdown`` (the GED power button) makes the
guest call PSCI ``SYSTEM_OFF``, which ends QEMU with status 0.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from unicorn_testlib import require_unicorn

require_unicorn()

import a64asm as a  # noqa: E402
from qemu_runner import QEMU_SECONDS, qemu  # noqa: E402

from vcpuhp import MachineConfig, VirtMachine, boot, memmap  # noqa: E402
from vcpuhp.boot import bundled_image  # noqa: E402

CPUS = 4
LOW = memmap.RAM_BASE
"""ACPI tables and the command line, as vcpuhp lays them out."""
LOW_SIZE = memmap.GUEST_STATUS_ADDR - memmap.RAM_BASE
STAGING = 0x4200_0000
"""Where QEMU loads that blob: it puts its own DTB at the start of RAM, so the
trampoline copies the blob over it before entering the guest."""
TRAMPOLINE = 0x4100_0000
WORK = memmap.GUEST_STATUS_ADDR + 0x420
ALL_ONLINE = f"possible 0-{CPUS - 1} present 0-{CPUS - 1} enabled 0-{CPUS - 1} online 0-{CPUS - 1}"


def boot_files(tmp_path: Path) -> tuple[Path, Path, int, tuple[int, ...]]:
    """The low-RAM blob and the trampoline, from a machine of the same topology."""
    machine = VirtMachine(MachineConfig.build(f"cpus={CPUS},maxcpus={CPUS}", accel="null"))
    machine.realize()
    try:
        image = boot.prepare(machine)
        assert machine.memory is not None
        low = machine.memory.read(LOW, LOW_SIZE)
    finally:
        machine.shutdown()
    blob = tmp_path / "low.bin"
    blob.write_bytes(low)
    words = LOW_SIZE // 8
    p = a.Program(TRAMPOLINE)(a.mov64(3, STAGING), a.mov64(4, LOW), a.mov64(5, words))
    p.label("copy")(a.ldr(6, 3), a.str64(6, 4), a.add_imm(3, 3, 8), a.add_imm(4, 4, 8))
    p(a.sub_imm(5, 5, 1)).cbnz(5, "copy")
    p(a.mov64(0, image.boot_args[0]), a.mov64(1, image.boot_args[1]))
    p(a.mov64(2, image.entry_point), 0xD61F0040)  # br x2
    trampoline = tmp_path / "trampoline.bin"
    trampoline.write_bytes(p.assemble())
    return blob, trampoline, image.entry_point, image.boot_args


def u64(qmp_text: str) -> list[int]:
    """The values of an HMP ``xp /Ngx`` dump."""
    return [int(word, 16) for line in qmp_text.splitlines() for word in line.split()[1:]]


@pytest.mark.requires_tool("qemu-system-aarch64", "qemu-system-arm")
def test_the_bundled_guest_runs_on_qemu_and_powers_off_on_the_power_button(
    tmp_path: Path,
) -> None:
    blob, trampoline, entry, _args = boot_files(tmp_path)
    firmware = tmp_path / "flash.bin"  # QEMU makes its GED only when firmware is loaded
    firmware.write_bytes(b"\x00\x00\x00\x14" * 1024)  # b . (never run: the loader sets PC)
    guest = bundled_image("vcpuhp-guest.bin")
    args = ["-M", "virt,gic-version=3", "-smp", str(CPUS), "-bios", str(firmware),
            "-device", f"loader,file={blob},addr={STAGING:#x},force-raw=on",
            "-device", f"loader,file={guest},addr={entry:#x},force-raw=on",
            "-device", f"loader,file={trampoline},addr={TRAMPOLINE:#x},cpu-num=0,force-raw=on"]
    with qemu(tmp_path, args) as (process, qmp):
        deadline = time.monotonic() + QEMU_SECONDS

        def work() -> list[int]:
            text = qmp.execute("human-monitor-command", **{"command-line": f"xp /4gx {WORK}"})
            return u64(str(text))

        while not all(count >= 3 for count in work()[1:]):
            assert process.poll() is None, "QEMU stopped before the secondaries ticked"
            assert time.monotonic() < deadline, f"no ticks: {work()}"
            time.sleep(0.05)
        assert work()[0] == 0, "the boot CPU has no tick"
        qmp.execute("system_powerdown")
        assert process.wait(timeout=QEMU_SECONDS) == 0  # SYSTEM_OFF ends QEMU
        console = process.communicate(timeout=QEMU_SECONDS)[0].decode(errors="replace")
    lines = console.replace("\r", "").splitlines()
    assert ALL_ONLINE in lines
    assert "vcpuhp-guest: power button: powering off" in lines
    assert "POWERDOWN" in qmp.events
