"""The parts of the kvm native layer that need no KVM: exit decoding, encodings, errors, probe.

They run on any host (x86 included); the real-KVM behaviour is in
``test_kvm_native.py``.
"""

from __future__ import annotations

import errno
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from vcpuhp.backend import Viability
from vcpuhp.errors import BackendError, ConfigError
from vcpuhp.gic import layout_redistributors
from vcpuhp_kvm import (
    ArmNisv,
    FailEntry,
    Hypercall,
    InternalError,
    Interrupted,
    Kvm,
    KvmClosed,
    KvmError,
    MmioRead,
    MmioWrite,
    SystemEvent,
    UnknownExit,
    VcpuInit,
    irq_line_number,
    probe,
    regs,
    uapi,
)
from vcpuhp_kvm import kick as kick_module
from vcpuhp_kvm.cdefs import new
from vcpuhp_kvm.exits import decode
from vcpuhp_kvm.smccc import is_psci
from vcpuhp_kvm.vgic import decode_redist_region_attr, redist_region_attr
from vcpuhp_kvm.viability import HostSupport, _open_failure, architecture_reason


class RegisterFile:
    """A vCPU's registers for :func:`decode` (reads x1-x3, takes the return values)."""

    def __init__(self, **values: int) -> None:
        self.values = {regs.x(int(name[1:])): value for name, value in values.items()}

    def get_one_reg(self, reg_id: int) -> int:
        return self.values.get(reg_id, 0)

    def set_one_reg(self, reg_id: int, value: int) -> None:
        self.values[reg_id] = value


def run_page(exit_reason: int) -> Any:
    page = new("struct kvm_run *")
    page.exit_reason = exit_reason
    return page


def test_an_mmio_store_decodes_to_its_address_size_and_little_endian_data() -> None:
    page = run_page(uapi.KVM_EXIT_MMIO)
    page.mmio.phys_addr = 0x0908_0000
    page.mmio.len = 4
    page.mmio.is_write = 1
    page.mmio.data = [0x78, 0x56, 0x34, 0x12, 0xEE, 0xEE, 0xEE, 0xEE]
    assert decode(page, RegisterFile()) == MmioWrite(0x0908_0000, 4, 0x1234_5678)


def test_an_mmio_load_reads_zero_unless_completed_and_completion_truncates_to_its_size() -> None:
    page = run_page(uapi.KVM_EXIT_MMIO)
    page.mmio.phys_addr = 0x0900_0018
    page.mmio.len = 2
    page.mmio.data = [0xAA] * 8  # stale bytes of an earlier exit
    load = decode(page, RegisterFile())
    assert isinstance(load, MmioRead)
    assert (load.addr, load.size) == (0x0900_0018, 2)
    assert list(page.mmio.data) == [0] * 8
    load.complete(0x1_2345)
    assert list(page.mmio.data) == [0x45, 0x23, 0, 0, 0, 0, 0, 0]


def test_a_hypercall_reads_x1_to_x3_and_writes_its_results_from_x0() -> None:
    page = run_page(uapi.KVM_EXIT_HYPERCALL)
    page.hypercall.nr = 0xC400_0003
    page.hypercall.flags = uapi.KVM_HYPERCALL_EXIT_SMC
    registers = RegisterFile(x1=0x101, x2=0x4008_0000, x3=7, x4=99)
    call = decode(page, registers)
    assert isinstance(call, Hypercall)
    assert (call.nr, call.args, call.smc) == (0xC400_0003, (0x101, 0x4008_0000, 7), True)
    call.set_return(-3, 1)
    assert registers.get_one_reg(regs.x(0)) == (1 << 64) - 3
    assert registers.get_one_reg(regs.x(1)) == 1


def test_the_other_exits_decode_with_their_fields() -> None:
    page = run_page(uapi.KVM_EXIT_SYSTEM_EVENT)
    page.system_event.type = uapi.KVM_SYSTEM_EVENT_RESET
    page.system_event.ndata = 1
    page.system_event.data = [0x5] + [0] * 15
    event = decode(page, RegisterFile())
    assert event == SystemEvent(uapi.KVM_SYSTEM_EVENT_RESET, 0x5, (0x5,))
    assert isinstance(event, SystemEvent) and event.reset and not event.shutdown

    page = run_page(uapi.KVM_EXIT_FAIL_ENTRY)
    page.fail_entry.hardware_entry_failure_reason = 1
    page.fail_entry.cpu = 3
    assert decode(page, RegisterFile()) == FailEntry(1, 3)

    page = run_page(uapi.KVM_EXIT_INTERNAL_ERROR)
    page.internal.suberror = 4
    page.internal.ndata = 2
    page.internal.data = [9, 8] + [0] * 14
    assert decode(page, RegisterFile()) == InternalError(4, (9, 8))

    page = run_page(uapi.KVM_EXIT_ARM_NISV)
    page.arm_nisv.esr_iss = 0x40
    page.arm_nisv.fault_ipa = 0x1000_0000
    assert decode(page, RegisterFile()) == ArmNisv(0x40, 0x1000_0000)

    assert decode(run_page(uapi.KVM_EXIT_INTR), RegisterFile()) == Interrupted()
    assert decode(run_page(99), RegisterFile()) == UnknownExit(99, 0)


def test_redistributor_regions_of_200_cpus_encode_as_documented_and_decode_back() -> None:
    words = [redist_region_attr(index, region.base, region.count)
             for index, region in enumerate(layout_redistributors(200))]
    # arm-vgic-v3.rst: count in bits 63:52, base in 51:16, flags 15:12 (0), index 11:0
    assert [(w >> 52, w & 0x000F_FFFF_FFFF_0000, (w >> 12) & 0xF, w & 0xFFF) for w in words] == [
        (123, 0x080A_0000, 0, 0), (77, 0x40_0000_0000, 0, 1)]
    assert [decode_redist_region_attr(w) for w in words] == [
        (0, 0x080A_0000, 123), (1, 0x40_0000_0000, 77)]


@pytest.mark.parametrize(("index", "base", "count", "message"), [
    (0, 0x080A_8000, 1, "64 KiB aligned"),
    (0, 1 << 52, 1, "below 2\\*\\*52"),
    (0, 0x080A_0000, 0, "count 0 is out of range 1-4095"),
    (0, 0x080A_0000, 4096, "count 4096 is out of range"),
    (4096, 0x080A_0000, 1, "index 4096 is out of range"),
])
def test_a_redistributor_region_that_does_not_fit_the_attribute_is_refused(
    index: int, base: int, count: int, message: str,
) -> None:
    with pytest.raises(ConfigError, match=message):
        redist_region_attr(index, base, count)


def test_irq_line_words_put_the_vcpu_index_above_255_in_vcpu2() -> None:
    assert irq_line_number(uapi.KVM_ARM_IRQ_TYPE_SPI, 0, 41) == 0x0100_0029
    # vCPU 300 = 0x12C: 0x1 in bits 31:28, 0x2C in 23:16
    assert irq_line_number(uapi.KVM_ARM_IRQ_TYPE_PPI, 300, 27) == 0x122C_001B
    for bad in [(16, 0, 41), (1, 0, 1 << 16), (1, 4096, 41), (1, -1, 41)]:
        with pytest.raises(ValueError, match="out of range"):
            irq_line_number(*bad)


def test_vcpu_init_packs_feature_bits_into_words() -> None:
    init = VcpuInit(5).with_features(uapi.KVM_ARM_VCPU_POWER_OFF, uapi.KVM_ARM_VCPU_PSCI_0_2, 40)
    c_init = init.to_c()
    assert (c_init.target, list(c_init.features)) == (5, [0b101, 1 << 8, 0, 0, 0, 0, 0])
    assert init.without_features(40).features == {0, 2}
    with pytest.raises(ValueError, match="out of range 0-223"):
        VcpuInit(5, frozenset({224})).to_c()


def test_register_ids_refuse_what_does_not_exist() -> None:
    assert regs.size_of(regs.PC) == 8
    with pytest.raises(ValueError, match="x31 is not a general-purpose register"):
        regs.x(31)
    with pytest.raises(ValueError, match="spsr\\[5\\] is out of range 0-4"):
        regs.spsr(5)
    with pytest.raises(ValueError, match="op0 0-3, op1 0-7"):
        regs.sysreg(4, 0, 0, 0, 0)


def test_a_kvm_error_names_the_ioctl_and_the_errno() -> None:
    error = KvmError("KVM_CREATE_VCPU", errno.EINVAL)
    assert str(error) == "KVM_CREATE_VCPU failed: EINVAL (22): Invalid argument"
    assert isinstance(error, BackendError)
    assert (error.ioctl, error.errno) == ("KVM_CREATE_VCPU", errno.EINVAL)
    detailed = KvmError("KVM_RUN", errno.ENOEXEC, "vCPU 3 was not initialised")
    assert str(detailed) == "KVM_RUN failed: ENOEXEC (8): vCPU 3 was not initialised"


def test_an_ioctl_on_a_device_that_is_not_kvm_fails_with_its_name_and_errno() -> None:
    with Kvm("/dev/null") as not_kvm, pytest.raises(
        KvmError, match=r"^KVM_GET_API_VERSION failed: ENOTTY \(25\)"
    ):
        not_kvm.api_version()
    assert not_kvm.closed
    with pytest.raises(KvmClosed, match="closed"):
        not_kvm.api_version()
    not_kvm.close()  # closing twice is harmless


def test_the_probe_names_the_host_architecture_on_x86() -> None:
    support = probe(machine="x86_64")
    assert support.viability == Viability.no(
        "KVM runs only same-architecture guests; this host is x86_64: use tcg-unicorn here, "
        "or `tox -e kvm-arm64` to test in an emulated arm64 host")
    assert architecture_reason("riscv64").startswith("KVM runs only same-architecture guests; "
                                                     "this host is riscv64")


def test_the_probe_says_why_dev_kvm_cannot_be_used_and_never_raises() -> None:
    missing = probe("/nonexistent/kvm", machine="aarch64").viability
    assert not missing.viable
    assert missing.reason.startswith("no /nonexistent/kvm: this kernel has no KVM")
    not_kvm = probe("/dev/null", machine="aarch64").viability
    assert not not_kvm.viable
    assert not_kvm.reason.startswith(
        "probing /dev/null failed: KvmError: KVM_GET_API_VERSION failed: ENOTTY")
    denied = _open_failure("/dev/kvm", PermissionError(errno.EACCES, "Permission denied"))
    assert denied.startswith("no permission to open /dev/kvm read-write")


def test_a_maxcpus_above_the_kvm_limit_is_refused_naming_the_limit() -> None:
    support = HostSupport(Viability.ok(), "6.12", max_vcpus=512, max_vcpu_id=512)
    support.check_maxcpus(512)
    with pytest.raises(ConfigError, match="maxcpus=513 is more vCPUs than this host's KVM "
                                          "allows: at most 512"):
        support.check_maxcpus(513)


def test_the_psci_ranges_are_the_two_whole_psci_function_id_ranges() -> None:
    assert [is_psci(f) for f in (0x8400_0000, 0x8400_001F, 0xC400_0003, 0xC400_001F)] == [True] * 4
    assert [is_psci(f) for f in (0x8400_0020, 0xC400_0020, 0x8000_0000, 0x8300_0000)] == [False] * 4


@pytest.fixture
def default_kick_signal() -> Iterator[None]:
    """SIGUSR1 back to its default handler before and after the test."""
    saved = signal.getsignal(kick_module.KICK_SIGNAL)
    signal.signal(kick_module.KICK_SIGNAL, signal.SIG_DFL)
    yield
    signal.signal(kick_module.KICK_SIGNAL, saved)


def test_the_kick_handler_installs_once_from_the_main_thread(default_kick_signal: None) -> None:
    errors: list[BaseException] = []

    def from_a_thread() -> None:
        try:
            kick_module.install_kick_handler()
        except BackendError as exc:
            errors.append(exc)

    thread = threading.Thread(target=from_a_thread)
    thread.start()
    thread.join()
    assert "must be installed from the main thread" in str(errors[0])
    with pytest.raises(BackendError, match="no kick handler and would kill the process"):
        kick_module.require_kick_handler()
    kick_module.install_kick_handler()
    kick_module.install_kick_handler()
    assert kick_module.kick_handler_installed()


def test_the_kick_handler_does_not_take_a_signal_someone_else_handles(
    default_kick_signal: None,
) -> None:
    signal.signal(kick_module.KICK_SIGNAL, lambda signum, frame: None)
    with pytest.raises(BackendError, match="SIGUSR1 already has a handler"):
        kick_module.install_kick_handler()
