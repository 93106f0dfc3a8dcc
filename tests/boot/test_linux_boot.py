"""Direct Linux boot: the RAM plan (pure) and what prepare() writes."""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from boot_testlib import MakeImage

from vcpuhp import MachineConfig, VirtMachine, boot, memmap
from vcpuhp.acpi import build_tables
from vcpuhp.boot import efi
from vcpuhp.boot.arm64_image import parse_kernel
from vcpuhp.boot.linux import linux_bootargs, plan_linux_boot
from vcpuhp.description import MachineDescription
from vcpuhp.errors import ConfigError

MiB = memmap.MiB


def describe(smp: str = "cpus=2,maxcpus=4", memory: str = "256M") -> MachineDescription:
    return MachineDescription.of(MachineConfig.build(smp, accel="null", memory=memory))


def test_the_plan_places_everything_inside_ram_without_overlap(make_image: MakeImage) -> None:
    description = describe()
    kernel = parse_kernel(make_image(text_offset=0x1_0000, image_size=9 * MiB), "Image")
    tables = build_tables(description)
    initrd = b"\x07" * (3 * MiB + 5)
    plan = plan_linux_boot(description, kernel, "console=ttyAMA0", tables, initrd)
    base = memmap.RAM_BASE
    assert plan.entry_point == base + 2 * MiB + 0x1_0000
    assert plan.kernel == (plan.entry_point, plan.entry_point + 9 * MiB)
    assert plan.initrd is not None and plan.initrd[0] % (2 * MiB) == 0
    assert plan.initrd[0] >= plan.kernel[1] and plan.initrd[1] - plan.initrd[0] == len(initrd)
    assert plan.boot_args == (plan.dtb_address, 0, 0, 0) and plan.dtb_address % 8 == 0
    assert plan.rsdp_address == base
    spans = sorted((addr, addr + len(data)) for addr, data in plan.segments)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, "segments overlap"
    assert spans[0][0] >= base and spans[-1][1] <= base + description.ram_size


def test_the_memory_map_covers_ram_exactly_with_the_documented_types(
    make_image: MakeImage,
) -> None:
    description = describe(memory="512M")
    tables = build_tables(description)
    plan = plan_linux_boot(description, parse_kernel(make_image(), "Image"), "", tables)
    entries = plan.memory_map
    assert entries[0].start == memmap.RAM_BASE
    assert entries[-1].end == memmap.RAM_BASE + 512 * MiB
    for first, second in itertools.pairwise(entries):
        assert first.end == second.start, "no holes in RAM"
    kinds = [(e.kind, e.start - memmap.RAM_BASE) for e in entries]
    assert kinds == [
        (efi.MemoryType.ACPI_RECLAIM, 0),
        (efi.MemoryType.CONVENTIONAL, entries[1].start - memmap.RAM_BASE),
        (efi.MemoryType.RUNTIME_SERVICES_DATA, 0x10_0000),
        (efi.MemoryType.CONVENTIONAL, 0x11_0000),
    ]
    assert entries[0].end >= memmap.RAM_BASE + tables.size
    assert entries[2].attributes == efi.RAM_ATTRIBUTES | efi.ATTRIBUTE_RUNTIME


def test_bootargs_get_what_the_machine_needs_unless_set() -> None:
    assert linux_bootargs("console=ttyAMA0") == "console=ttyAMA0 efi=noruntime acpi=force"
    assert linux_bootargs("acpi=on efi=debug") == "acpi=on efi=debug"
    assert linux_bootargs("") == "efi=noruntime acpi=force"


def test_a_kernel_that_does_not_fit_names_the_ram_it_needs(make_image: MakeImage) -> None:
    description = describe(memory="32M")
    kernel = parse_kernel(make_image(image_size=40 * MiB), "Image")
    with pytest.raises(ConfigError, match=r"the kernel \(41943040 bytes\) needs at least 42M "
                                          r"of RAM; the machine has 32M \(-m\)"):
        plan_linux_boot(description, kernel, "", build_tables(description))
    with pytest.raises(ConfigError, match=r"and the initrd \(4194304 bytes\) need at least "
                                          r"46M"):
        plan_linux_boot(description, kernel, "", build_tables(description), bytes(4 * MiB))


@pytest.fixture
def linux_machine(tmp_path: Path, make_image: MakeImage) -> Callable[..., VirtMachine]:
    """A realized null machine configured with a synthetic Linux kernel (and initrd)."""
    made: list[VirtMachine] = []

    def make(initrd: bytes | None = None, cmdline: str = "console=ttyAMA0") -> VirtMachine:
        kernel = tmp_path / "Image"
        kernel.write_bytes(make_image(image_size=4 * MiB))
        initrd_path = None
        if initrd is not None:
            initrd_path = tmp_path / "initrd.gz"
            initrd_path.write_bytes(initrd)
        machine = VirtMachine(MachineConfig.build(
            "cpus=2,maxcpus=4", accel="null", kernel=kernel, initrd=initrd_path,
            guest_cmdline=cmdline))
        machine.realize()
        made.append(machine)
        return machine

    yield make  # type: ignore[misc]
    for machine in made:
        machine.shutdown()


def test_prepare_writes_the_plan_into_ram(linux_machine: Callable[..., VirtMachine]) -> None:
    machine = linux_machine(initrd=b"INITRD" * 1000)
    image = boot.prepare(machine)
    memory = machine.memory
    assert memory is not None and image.linux is not None
    plan = image.linux
    assert image.protocol == boot.LINUX
    assert image.boot_args == (plan.dtb_address, 0, 0, 0)
    assert memory.read(memmap.RAM_BASE, 8) == b"RSD PTR "
    assert memory.read(plan.dtb_address, 4) == b"\xd0\x0d\xfe\xed"
    assert memory.read(plan.entry_point + 0x38, 4) == b"ARMd"
    assert plan.initrd is not None
    assert memory.read(plan.initrd[0], 6) == b"INITRD"
    system_table = memmap.RAM_BASE + 0x10_0000
    assert memory.read(system_table, 8) == b"IBI SYST"
    config_table = struct.unpack_from("<Q", memory.read(system_table + 112, 8))[0]
    assert struct.unpack_from("<Q", memory.read(config_table + 16, 8))[0] == plan.rsdp_address


def test_an_initrd_without_a_linux_kernel_is_refused(tmp_path: Path) -> None:
    initrd = tmp_path / "initrd"
    initrd.write_bytes(b"x")
    machine = VirtMachine(MachineConfig.build("1", accel="null", initrd=initrd))
    machine.realize()
    try:
        with pytest.raises(ConfigError, match="--initrd needs a Linux kernel Image"):
            boot.prepare(machine)
    finally:
        machine.shutdown()


def test_devices_fifos_and_oversized_files_are_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"/dev/zero is not a regular file"):
        boot.read_boot_file(Path("/dev/zero"), "kernel", 1 << 20)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="fifo is not a regular file"):
        boot.read_boot_file(fifo, "kernel", 1 << 20)
    big = tmp_path / "big"
    big.write_bytes(bytes(2048))
    with pytest.raises(ConfigError, match=r"big \(2048 bytes\) is larger than guest RAM "
                                          r"\(1024 bytes\)"):
        boot.read_boot_file(big, "initrd", 1024)
    with pytest.raises(ConfigError, match=r"cannot read kernel .*No such file"):
        boot.read_boot_file(tmp_path / "missing", "kernel", 1024)
