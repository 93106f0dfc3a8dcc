"""The kvm backend's parts that need no KVM: its interrupt lines, its checks, its registration.

They run on any host; on a host that is not arm64 they also pin down that
``--accel kvm`` fails at once with the viability reason.
"""

from __future__ import annotations

import platform

import pytest

from cli_process import run_vcpuhp
from vcpuhp import MachineConfig, VirtMachine, memmap
from vcpuhp.description import MachineDescription
from vcpuhp.errors import BackendNotViable, ConfigError, StateError
from vcpuhp.gic_layout import layout_redistributors
from vcpuhp.plugins import PluginManager
from vcpuhp_kvm import KvmBackend, KvmInterruptController
from vcpuhp_kvm.requirements import (
    check_cpu_model,
    choose_ipa_bits,
    highest_guest_address,
    ipa_bits_needed,
)
from vcpuhp_kvm.viability import ARM64_MACHINES, architecture_reason

GED = memmap.ACPI_GED_SPI
UART = memmap.UART_SPI


class Lines:
    """Records ``KVM_IRQ_LINE`` calls as ``(intid, level)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    def set_spi(self, intid: int, level: bool) -> None:
        self.calls.append((intid, level))


@pytest.fixture
def lines() -> Lines:
    return Lines()


@pytest.fixture
def irqchip(lines: Lines) -> KvmInterruptController:
    chip = KvmInterruptController(layout_redistributors(6))
    chip.bind(lines)
    return chip


def test_every_ged_event_is_a_pulse_so_the_next_one_raises_again(
    irqchip: KvmInterruptController, lines: Lines,
) -> None:
    irqchip.set_spi(GED)
    irqchip.set_spi(GED)
    irqchip.set_spi(GED, False)  # an edge line has no level to lower
    assert lines.calls == [(41, True), (41, False)] * 2
    assert irqchip.edges_sent == 2
    assert irqchip.state()["lines_high"] == []


def test_the_uart_line_follows_its_level_and_a_repeated_level_is_not_sent_again(
    irqchip: KvmInterruptController, lines: Lines,
) -> None:
    irqchip.set_spi(UART, True)
    irqchip.set_spi(UART, True)
    assert irqchip.state()["lines_high"] == [UART]
    irqchip.set_spi(UART, False)
    irqchip.set_spi(UART, False)
    assert lines.calls == [(33, True), (33, False)]


def test_a_system_reset_lowers_the_lines_held_high_then_resets_the_vgic(
    lines: Lines,
) -> None:
    resets: list[list[tuple[int, bool]]] = []
    irqchip = KvmInterruptController(layout_redistributors(6))
    irqchip.bind(lines, on_reset=lambda: resets.append(list(lines.calls)))
    irqchip.set_spi(UART, True)
    irqchip.set_spi(5, True)
    irqchip.reset()
    assert lines.calls[2:] == [(33, False), (37, False)]
    assert resets == [lines.calls]  # the vGIC reset comes after the lines went low
    assert irqchip.state()["lines_high"] == []


def test_lines_are_refused_out_of_range_before_the_vgic_exists_and_after_shutdown(
    irqchip: KvmInterruptController, lines: Lines,
) -> None:
    with pytest.raises(ValueError, match="SPI 256 is out of range 0-255"):
        irqchip.set_spi(256)
    unbound = KvmInterruptController(layout_redistributors(2))
    with pytest.raises(StateError, match="the in-kernel vGIC does not exist"):
        unbound.set_spi(GED)
    irqchip.close()
    with pytest.raises(StateError, match="was shut down"):
        irqchip.set_spi(UART, True)
    assert lines.calls == []


def test_wiring_is_tracked_per_cpu_and_the_state_shows_the_layout(
    irqchip: KvmInterruptController,
) -> None:
    irqchip.set_accessible(0, True)
    irqchip.set_accessible(4, True)
    irqchip.set_accessible(4, False)
    assert (irqchip.is_accessible(0), irqchip.is_accessible(4)) == (True, False)
    assert not irqchip.owns(memmap.GICD.base)  # the kernel answers GIC accesses
    assert irqchip.state() == {
        "kind": "kvm-vgic-v3", "distributor": memmap.GICD.base,
        "redistributor_regions": [[memmap.GICR_REGION0.base, 6]], "nr_irqs": 288,
        "bound": True, "accessible": [0], "lines_high": [],
    }


def test_only_the_hosts_own_cpu_is_accepted() -> None:
    check_cpu_model("host")
    check_cpu_model("max")
    for model in ("cortex-a57", "cortex-a72"):
        with pytest.raises(ConfigError, match=f"CPU model '{model}' is not available: under "
                                              "KVM the vCPUs are this host's CPUs; use --cpu host"):
            check_cpu_model(model)


def describe(smp: str, memory: str = "256M") -> MachineDescription:
    return MachineDescription.of(MachineConfig.build(smp, memory=memory))


def test_the_guest_physical_address_size_covers_the_high_redistributor_region() -> None:
    small, large = describe("cpus=1,maxcpus=123"), describe("cpus=1,maxcpus=124")
    assert highest_guest_address(small) == memmap.RAM_BASE + 256 * memmap.MiB
    assert ipa_bits_needed(small) == 32
    assert highest_guest_address(large) == memmap.GICR_REGION_HIGH.end
    assert ipa_bits_needed(large) == 39  # 0x40_0000_0000 is 2**38
    assert ipa_bits_needed(describe("cpus=1,maxcpus=4", memory="8G")) == 34


def test_the_ipa_size_chosen_fits_the_host_or_says_what_does_not() -> None:
    large = describe("cpus=1,maxcpus=200")
    assert choose_ipa_bits(large, 48) == 39
    assert choose_ipa_bits(large, 0) is None  # no KVM_CAP_ARM_VM_IPA_SIZE: KVM's 40 bits
    with pytest.raises(ConfigError, match=r"needs 39-bit guest-physical addresses .* "
                                          r"use maxcpus=123 or fewer.* supports 36 bits"):
        choose_ipa_bits(large, 36)
    with pytest.raises(ConfigError, match="RAM up to 0x240000000; use at most 3072M"):
        choose_ipa_bits(describe("cpus=1,maxcpus=4", memory="8G"), 32)


def test_the_backend_is_registered_with_its_capabilities_and_prefers_the_host_cpu() -> None:
    registry = PluginManager().backends
    assert registry.get("kvm") is KvmBackend
    assert KvmBackend.capabilities.as_dict() == {
        "executes_guest_code": True, "parks_vcpus": True, "can_snapshot": False,
        "in_kernel_irqchip": True,
    }
    assert registry.preferred_cpu_model("kvm") == "host"
    assert registry.preferred_cpu_model("null") == "max"


def test_the_backend_takes_no_options() -> None:
    with pytest.raises(ConfigError, match=r"kvm: unknown option.* slice-insns; the kvm backend "
                                          r"takes none"):
        KvmBackend({"slice-insns": "5"})


not_arm64 = pytest.mark.skipif(
    platform.machine() in ARM64_MACHINES,
    reason="on an arm64 host KVM may well be viable; the refusal is for other architectures",
)


@not_arm64
def test_a_kvm_machine_on_this_host_is_refused_at_once_with_the_reason() -> None:
    config = MachineConfig.build("cpus=1,maxcpus=2", cpu="host", accel="kvm")
    with pytest.raises(BackendNotViable) as refused:
        VirtMachine(config)
    assert str(refused.value) == (f"backend 'kvm' cannot run here: "
                                  f"{architecture_reason(platform.machine())}")


@not_arm64
def test_vcpuhp_run_accel_kvm_fails_at_once_naming_the_reason() -> None:
    run = run_vcpuhp("run", "--accel", "kvm", "--monitor", "none")
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr == (f"vcpuhp: error: backend 'kvm' cannot run here: "
                          f"{architecture_reason(platform.machine())}\n")
