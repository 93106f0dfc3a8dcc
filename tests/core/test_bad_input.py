"""Every refused request gets a clear error and leaves the machine byte-for-byte as it was."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from vcpuhp import (
    ConfigError,
    DeviceError,
    DeviceNotFound,
    GuestError,
    MachineConfig,
    PolicyRefused,
    StateError,
    VirtMachine,
)
from vcpuhp import events as ev
from vcpuhp.psci import PsciFunction, PsciReturn
from vcpuhp_null import GuestDriver

Seed = tuple[VirtMachine, GuestDriver]
HP = 0x090C0000


def _unchanged(machine: VirtMachine, call: Callable[[], object]) -> object:
    before = machine.snapshot_bytes()
    result = call()
    assert machine.snapshot_bytes() == before
    return result


def _guest_error_of(machine: VirtMachine, call: Callable[[], object]) -> str:
    """The GUEST_ERROR message ``call`` causes; the machine must stay unchanged."""
    with machine.events.recorder() as recorder:
        _unchanged(machine, call)
        error = recorder.wait_for(ev.GUEST_ERROR, timeout=1)
    return str(error.data["message"])


def _online_core4(seed: Seed) -> None:
    """Plug core 4 and let the guest online it."""
    machine, driver = seed
    machine.device_add("max-arm-cpu", "core4", **{"core-id": 4})
    driver.handle_hotplug()


@pytest.mark.parametrize(
    ("driver", "device_id", "props", "error", "message"),
    [
        ("virtio-net-pci", "n0", {"core-id": 4}, DeviceError,
         "'virtio-net-pci' is not a valid CPU device model name; valid: cortex-a57-arm-cpu"),
        ("cortex-a72-arm-cpu", "c4", {"core-id": 4}, DeviceError,
         "does not match this machine's CPUs \\('max-arm-cpu'\\)"),
        ("max-arm-cpu", None, {"core-id": 4}, DeviceError, "needs an 'id'"),
        ("max-arm-cpu", "", {"core-id": 4}, DeviceError, "needs an 'id'"),
        ("max-arm-cpu", "4core", {"core-id": 4}, DeviceError, "expects an identifier"),
        ("max-arm-cpu", "c9", {"core-id": 9}, ConfigError, "core-id 9 is out of range 0-5"),
        ("max-arm-cpu", "c9", {"core-id": -1}, ConfigError, "out of range 0-5"),
        ("max-arm-cpu", "c9", {}, ConfigError, "core-id is not set"),
        ("max-arm-cpu", "c2", {"core-id": 2}, DeviceError, "already plugged"),
        ("max-arm-cpu", "c4", {"core-id": 4, "node-id": 0}, DeviceError,
         "Property 'max-arm-cpu.node-id' not found"),
    ],
)
def test_device_add_refusals(seed: Seed, driver: str, device_id: str | None,
                             props: dict[str, int], error: type[Exception], message: str) -> None:
    machine, _ = seed
    with pytest.raises(error, match=message):
        _unchanged(machine, lambda: machine.device_add(driver, device_id, **props))


def test_duplicate_id_is_refused(seed: Seed) -> None:
    machine, _ = seed
    machine.device_add("max-arm-cpu", "core4", **{"core-id": 4})
    with pytest.raises(DeviceError, match="Duplicate device ID 'core4'"):
        _unchanged(machine, lambda: machine.device_add("max-arm-cpu", "core4", **{"core-id": 5}))


def test_device_del_refusals(seed: Seed) -> None:
    machine, _ = seed
    with pytest.raises(DeviceNotFound, match="Device 'core4' not found"):
        _unchanged(machine, lambda: machine.device_del("core4"))
    with pytest.raises(PolicyRefused, match="allow_cold_unplug"):
        _unchanged(machine, lambda: machine.device_del("/machine/unattached/device[2]"))
    machine.device_add("max-arm-cpu", "core4", **{"core-id": 4})
    with pytest.raises(DeviceError, match="timeout must be a positive number"):
        _unchanged(machine, lambda: machine.device_del("core4", timeout=0))
    with pytest.raises(DeviceError, match="has no unplug pending"):
        _unchanged(machine, lambda: machine.cancel_unplug("core4"))


def test_cold_unplug_policy_flag_allows_it(null_machine: Callable[..., VirtMachine]) -> None:
    machine = null_machine("cpus=4,maxcpus=6", allow_cold_unplug=True)
    driver = GuestDriver(machine)
    driver.boot()
    machine.device_del("/machine/unattached/device[3]")
    with machine.events.recorder() as recorder:
        driver.handle_hotplug()
        deleted = recorder.wait_for(ev.DEVICE_DELETED, timeout=1)
    assert deleted.data["path"] == "/machine/unattached/device[3]"
    assert machine.cpu_masks().enabled == {0, 1, 2}


@pytest.mark.parametrize(
    ("caller", "function", "args", "expected"),
    [
        (0, 0x8400_FFFF, (), PsciReturn.NOT_SUPPORTED),
        (0, 0x8400_0005, (), PsciReturn.NOT_SUPPORTED),  # MIGRATE: no Trusted OS
        (0, PsciFunction.CPU_ON_64, (0xFF00FF, 0x40200000, 0), PsciReturn.INVALID_PARAMETERS),
        (0, PsciFunction.CPU_ON_64, (1 << 60, 0x40200000, 0), PsciReturn.INVALID_PARAMETERS),
        (0, PsciFunction.CPU_ON_64, (0x4, 0x40200000, 0), PsciReturn.DENIED),
        (0, PsciFunction.CPU_ON_64, (0x1, 0x40200000, 0), PsciReturn.ALREADY_ON),
        (0, PsciFunction.CPU_ON_64, (0x2, 0x0, 0), PsciReturn.INVALID_ADDRESS),
        (0, PsciFunction.CPU_ON_64, (0x2, 0x40200002, 0), PsciReturn.INVALID_ADDRESS),
        (0, PsciFunction.AFFINITY_INFO_64, (0x77, 0), PsciReturn.INVALID_PARAMETERS),
        (0, PsciFunction.AFFINITY_INFO_64, (0x1, 1), PsciReturn.INVALID_PARAMETERS),
        (0, PsciFunction.PSCI_FEATURES, (0x8400_0005,), PsciReturn.NOT_SUPPORTED),
        (0, PsciFunction.AFFINITY_INFO, (0x1, 1 << 32 | 1), PsciReturn.INVALID_PARAMETERS),
    ],
)
def test_psci_nonsense_gets_its_return_code(seed: Seed, caller: int, function: int,
                                            args: tuple[int, ...], expected: int) -> None:
    machine, _ = seed
    assert _unchanged(machine, lambda: machine.psci_call(caller, function, *args)) == expected


def test_psci_answers(seed: Seed) -> None:
    machine, driver = seed
    assert machine.psci_call(0, PsciFunction.PSCI_VERSION) == 0x10001
    assert machine.psci_call(0, PsciFunction.MIGRATE_INFO_TYPE) == 2
    assert machine.psci_call(0, PsciFunction.PSCI_FEATURES, PsciFunction.CPU_ON_64) == 0
    assert driver.affinity_info(1) == 0
    assert driver.affinity_info(2) == 1
    assert driver.affinity_info(5) == 1
    assert machine.psci_call(0, PsciFunction.CPU_ON, 0x1_0000_0002, 0xFF_4020_0000, 2) == \
        PsciReturn.SUCCESS, "32-bit CPU_ON sees only w1-w3"
    assert machine.psci_call(0, PsciFunction.AFFINITY_INFO, 0x2, 1 << 32) == 0, \
        "32-bit AFFINITY_INFO sees only w2 (level 0)"
    assert machine.psci_call(0, PsciFunction.CPU_SUSPEND, 0, 0, 0) == 0
    assert machine.psci_call(0, PsciFunction.PSCI_FEATURES, PsciFunction.CPU_SUSPEND) == 0


def test_psci_from_a_cpu_that_is_not_running_is_an_error(seed: Seed) -> None:
    machine, _ = seed
    for caller, message in [(3, "CPU 3 is powered-off"), (5, "CPU 5 is unplugged"),
                            (6, "CPU 6 does not exist")]:
        with pytest.raises(GuestError, match=message):
            _unchanged(machine, lambda c=caller: machine.psci_call(c, PsciFunction.PSCI_VERSION))


def test_on_pending_is_reported(null_machine: Callable[..., VirtMachine]) -> None:
    machine = null_machine("cpus=2,maxcpus=2", backend_options={"defer-start": "on"})
    driver = GuestDriver(machine)
    driver.start(0)
    assert driver.cpu_on(1) == PsciReturn.SUCCESS
    assert driver.cpu_on(1) == PsciReturn.ON_PENDING
    assert driver.affinity_info(1) == 2
    driver.start(1)
    assert driver.affinity_info(1) == 0


def test_cpu_on_denied_by_a_plugin_policy(null_machine: Callable[..., VirtMachine]) -> None:
    from vcpuhp import PluginManager, hookimpl

    class NoOddCpus:
        @hookimpl
        def vcpuhp_cpu_on_allowed(self, machine: object, caller: object, target: object,
                                  entry_point: int, context_id: int) -> str | None:
            return "odd CPUs stay off" if target.slot.index % 2 else None  # type: ignore[attr-defined]

    plugins = PluginManager([NoOddCpus()])
    machine = VirtMachine(MachineConfig.build("cpus=4"), plugins=plugins)
    machine.realize()
    try:
        driver = GuestDriver(machine)
        assert _unchanged(machine, lambda: driver.cpu_on(1)) == PsciReturn.DENIED
        assert driver.cpu_on(2) == PsciReturn.SUCCESS
    finally:
        machine.shutdown()


@pytest.mark.parametrize(
    ("offset", "size", "value", "message"),
    [
        (0x4, 1, 0x40, "sets reserved bits"),
        (0x5, 1, 7, "unknown command 7"),
        (0x8, 4, 1, "has no effect"),
        (0x1, 2, 1, "is not a register"),
        (0x4, 4, 1, "is not a register"),
        (0x4, 1, 0x8, "eject refused: CPU 0 is the boot CPU"),
    ],
)
def test_garbage_register_writes_are_reported_and_ignored(
    seed: Seed, offset: int, size: int, value: int, message: str
) -> None:
    machine, _ = seed
    assert message in _guest_error_of(machine, lambda: machine.mmio_write(HP + offset, size, value))


def test_selector_past_the_last_cpu_reads_zero_and_ignores_writes(seed: Seed) -> None:
    """The spec's enumeration loop stores any selector; other registers then read 0."""
    machine, driver = seed
    driver.select(99)
    assert driver.flags() == 0 and driver.data() == 0
    before = machine.snapshot_bytes()
    driver.write_flags(0x8)
    driver.command(3)
    assert machine.snapshot_bytes() == before
    driver.select(2)
    assert driver.flags() == 0x1


def test_one_flags_write_does_one_thing(seed: Seed) -> None:
    machine, driver = seed
    machine.device_add("max-arm-cpu", "core4", **{"core-id": 4})
    driver.select(4)
    driver.write_flags(0x2 | 0x8)  # clear insert wins; no eject
    assert machine.vcpus[4].enabled and not machine.vcpus[4].insert_pending


def test_the_boot_cpu_is_never_unplugged(null_machine: Callable[..., VirtMachine]) -> None:
    machine = null_machine("cpus=2,maxcpus=2", allow_cold_unplug=True)
    driver = GuestDriver(machine)
    driver.boot()
    with pytest.raises(PolicyRefused, match="CPU 0 is the boot CPU"):
        _unchanged(machine, lambda: machine.device_del("/machine/unattached/device[0]"))
    assert driver.cpu_off(0) == 0
    message = _guest_error_of(machine, lambda: driver.eject(0))
    assert "CPU 0 is the boot CPU and can never be ejected" in message


def test_linux_eject_in_progress_ost_is_not_a_guest_error(seed: Seed) -> None:
    machine, driver = seed
    _online_core4(seed)
    machine.device_del("core4")
    driver.scan()
    with machine.events.recorder() as recorder:
        driver.ost(4, 0x3, 0x84)  # ACPI_OST_SC_EJECT_IN_PROGRESS, as Linux sends
        driver.cpu_off(4)
        driver.eject(4)
        recorder.wait_for(ev.DEVICE_DELETED, timeout=1)
    assert ev.DEVICE_UNPLUG_GUEST_ERROR not in recorder.names()


def test_a_raising_observer_plugin_does_not_break_the_machine(
    null_machine: Callable[..., VirtMachine],
) -> None:
    from vcpuhp import PluginManager, hookimpl

    class Buggy:
        @hookimpl
        def vcpuhp_cpu_unplugged(self, machine: object, vcpu: object,
                                 device_id: str | None) -> None:
            raise RuntimeError("plugin bug")

        @hookimpl
        def vcpuhp_device_del_allowed(self, machine: object, vcpu: object) -> str | None:
            if getattr(vcpu, "device_id", None) == "c3":
                raise RuntimeError("policy bug")
            return None

    machine = VirtMachine(MachineConfig.build("cpus=1,maxcpus=4"),
                          plugins=PluginManager([Buggy()]))
    machine.realize()
    try:
        driver = GuestDriver(machine)
        driver.boot()
        machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
        machine.device_add("max-arm-cpu", "c3", **{"core-id": 3})
        driver.handle_hotplug()
        with pytest.raises(PolicyRefused, match="policy plugin failed: RuntimeError: policy bug"):
            _unchanged(machine, lambda: machine.device_del("c3"))
        with machine.events.recorder() as recorder:
            machine.device_del("c2")
            driver.handle_hotplug()
            recorder.wait_for(ev.DEVICE_DELETED, timeout=1)
        assert ev.GUEST_ERROR not in recorder.names()
        machine.check_invariants()
    finally:
        machine.shutdown()


def test_a_failed_realize_can_be_retried() -> None:
    from vcpuhp import BackendError
    from vcpuhp_null import NullBackend

    class FailsOnce(NullBackend):
        failed = False

        def realize_vcpu(self, vcpu: object) -> None:
            if vcpu.slot.index == 1 and not FailsOnce.failed:  # type: ignore[attr-defined]
                FailsOnce.failed = True
                raise BackendError("injected")
            super().realize_vcpu(vcpu)  # type: ignore[arg-type]

    machine = VirtMachine(MachineConfig.build("cpus=2,maxcpus=3"), backend=FailsOnce())
    with pytest.raises(BackendError, match="injected"):
        machine.realize()
    assert machine.memory is None and len(machine.parked) == 0
    assert all(v.handle is None for v in machine.vcpus)
    machine.backend = FailsOnce()
    machine.realize()
    try:
        assert machine.cpu_masks().enabled == {0, 1}
        machine.check_invariants()
    finally:
        machine.shutdown()


def test_a_vcpu_fault_powers_the_backend_vcpu_off(seed: Seed) -> None:
    machine, driver = seed
    _online_core4(seed)
    machine.vcpu_fault(4, RuntimeError("guest fault"))
    assert machine.backend.vcpus[4].powered is False  # type: ignore[attr-defined]
    machine.device_del("core4")
    with machine.events.recorder() as recorder:
        driver.scan()
        driver.eject(4)
        recorder.wait_for(ev.DEVICE_DELETED, timeout=1)


def test_eject_of_a_running_cpu_is_refused(seed: Seed) -> None:
    machine, driver = seed
    _online_core4(seed)
    message = _guest_error_of(machine, lambda: driver.eject(4))
    assert "CPU 4 is online; the guest must CPU_OFF it before eject" in message


def test_failed_eject_ost_reports_unplug_guest_error(seed: Seed) -> None:
    machine, driver = seed
    _online_core4(seed)
    machine.device_del("core4")
    driver.scan()
    with machine.events.recorder() as recorder:
        driver.ost(4, 0x3, 0x1)
        error = recorder.wait_for(ev.DEVICE_UNPLUG_GUEST_ERROR, timeout=1)
    assert error.data == {"device": "core4", "path": "/machine/peripheral/core4"}
    assert machine.cpu_masks().online == {0, 1, 4}


def test_gic_interface_of_an_unplugged_cpu_is_inaccessible(seed: Seed) -> None:
    machine, _ = seed
    with pytest.raises(GuestError, match="CPU 4 is not accessible"):
        _unchanged(machine, lambda: machine.sysreg_read(4, "ICC_IAR1_EL1"))


def test_machine_refuses_requests_after_shutdown(null_machine: Callable[..., VirtMachine]) -> None:
    machine = null_machine("cpus=1,maxcpus=2")
    machine.shutdown()
    with pytest.raises(StateError, match="machine is shutdown"):
        machine.device_add("max-arm-cpu", "c1", **{"core-id": 1})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpu": "pentium"}, "CPU model 'pentium' is not supported; valid: cortex-a57"),
        ({"memory": "lots"}, "is not a size"),
        ({"memory": "1M"}, "out of range"),
    ],
)
def test_bad_machine_config(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MachineConfig.build("cpus=1", **kwargs)  # type: ignore[arg-type]
