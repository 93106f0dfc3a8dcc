"""The interrupt controller is chosen by a backend capability, never by a backend name.

A backend with ``in_kernel_irqchip`` supplies its own controller (KVM's
vGICv3 is the real one); the machine then raises the GED's interrupt through
it, wires CPUs on plug, and no longer answers the guest's GIC registers.
"""

from __future__ import annotations

from typing import Any

import pytest

from vcpuhp import MachineConfig, VirtMachine, memmap
from vcpuhp.backend import BackendCapabilities
from vcpuhp.description import MachineDescription
from vcpuhp.errors import GuestError, StateError
from vcpuhp.gic import Gicv3
from vcpuhp.irqchip import InterruptController
from vcpuhp_null import GuestDriver
from vcpuhp_null.backend import NullBackend


class RecordingIrqchip(InterruptController):
    """An in-kernel controller stand-in that records what the machine asks of it."""

    def __init__(self, description: MachineDescription) -> None:
        self.regions = description.redistributor_regions
        self.calls: list[tuple[Any, ...]] = []
        self.wired = [False] * len(description.slots)

    def set_spi(self, spi: int, level: bool = True) -> None:
        self.calls.append(("spi", spi, level))

    def set_accessible(self, index: int, accessible: bool) -> None:
        self.wired[index] = accessible
        self.calls.append(("wire", index, accessible))

    def is_accessible(self, index: int) -> bool:
        return self.wired[index]

    def reset_cpu_interface(self, index: int) -> None:
        self.calls.append(("reset-cpu", index))

    def reset(self) -> None:
        self.calls.append(("reset",))

    def state(self) -> dict[str, Any]:
        return {"wired": list(self.wired)}


class InKernelNull(NullBackend):
    name = "null-in-kernel-irqchip"
    capabilities = BackendCapabilities(executes_guest_code=False, parks_vcpus=True,
                                       in_kernel_irqchip=True)

    def create_irqchip(self, description: MachineDescription) -> InterruptController:
        return RecordingIrqchip(description)


@pytest.fixture
def machine() -> Any:
    config = MachineConfig.build("cpus=2,maxcpus=4", accel="null")
    machine = VirtMachine(config, backend=InKernelNull())
    machine.realize()
    yield machine
    machine.shutdown()


def test_the_backends_controller_is_used(machine: VirtMachine) -> None:
    chip = machine.irqchip
    assert isinstance(chip, RecordingIrqchip)
    assert chip.regions == machine.description.redistributor_regions
    assert chip.wired == [True, True, False, False]
    with pytest.raises(StateError, match="in-kernel interrupt controller"):
        _ = machine.gic


def test_plug_wires_the_cpu_and_raises_the_ged_spi_through_it(machine: VirtMachine) -> None:
    chip = machine.irqchip
    assert isinstance(chip, RecordingIrqchip)
    chip.calls.clear()
    machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
    assert chip.calls == [("wire", 2, True), ("spi", memmap.ACPI_GED_SPI, True)]
    machine.check_invariants()


def test_guest_gic_accesses_do_not_reach_the_machine(machine: VirtMachine) -> None:
    with pytest.raises(GuestError, match="no device or RAM at 0x8000000"):
        machine.mmio_read(memmap.GICD.base, 4)
    # the machine's own devices still answer
    assert machine.mmio_read(memmap.ACPI_GED.base, 4) == 0


def test_psci_cpu_on_resets_the_cpu_interface_through_it(machine: VirtMachine) -> None:
    chip = machine.irqchip
    assert isinstance(chip, RecordingIrqchip)
    driver = GuestDriver(machine)
    chip.calls.clear()
    assert driver.cpu_on(1) == 0
    assert chip.calls == [("reset-cpu", 1)]


def test_without_the_capability_the_userspace_model_is_used() -> None:
    config = MachineConfig.build("cpus=1,maxcpus=2", accel="null")
    machine = VirtMachine(config)
    assert isinstance(machine.irqchip, Gicv3)
    assert machine.gic is machine.irqchip


def test_description_is_a_pure_function_of_the_config() -> None:
    config = MachineConfig.build("cpus=2,maxcpus=200", accel="null")
    one, two = MachineDescription.of(config), MachineDescription.of(config)
    assert one.redistributor_regions == two.redistributor_regions
    assert [r.count for r in one.redistributor_regions] == [123, 77]
    assert [s.arch_id for s in one.slots] == [s.arch_id for s in two.slots]
    assert not one.is_ejectable(one.slots[0])
    assert not one.is_ejectable(one.slots[1])
    assert one.is_ejectable(one.slots[2])
