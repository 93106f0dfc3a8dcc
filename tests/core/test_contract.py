"""The contract's rules, the words the suite quotes, and how the machine holds backends to them."""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from dataclasses import replace

import pytest

import vcpuhp.backend
from vcpuhp import MachineConfig, VirtMachine
from vcpuhp.backend import RULES, AcceleratorBackend, BackendVcpu, rule
from vcpuhp.errors import BackendCallError, BackendError, ConfigError, ContractViolation
from vcpuhp.monitor import Monitor
from vcpuhp.plugin_settings import PluginSettings
from vcpuhp.topology import CpuSlot
from vcpuhp_null import NullBackend, NullVcpu

NO_PLUGINS = PluginSettings(autoload=False)


def _plain(text: str) -> str:
    """Docstring text without reST markup and line breaks."""
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?([^`]+)`", r"\1", text)
    return " ".join(text.replace("``", "").split())


def _contract_text() -> str:
    docs = [vcpuhp.backend.__doc__ or ""]
    docs += [inspect.getdoc(m) or "" for _n, m in inspect.getmembers(AcceleratorBackend)]
    return _plain(" ".join(docs))


@pytest.mark.parametrize("name", sorted(RULES))
def test_every_rule_is_worded_in_the_contract_as_the_suite_quotes_it(name: str) -> None:
    pattern = re.escape(RULES[name]).replace(re.escape("{method}"), r"[\w ]+")
    assert re.search(pattern, _contract_text()), f"rule {name!r} is not in backend.py's docs"


def test_a_rule_quote_names_the_method() -> None:
    assert rule("errors", "realize_vcpu") == \
        "contract: realize_vcpu must raise BackendError having undone its partial work"


class _RaisesOnPlug(NullBackend):
    name = "raises-on-plug"

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def realize_vcpu(self, vcpu: BackendVcpu) -> None:
        if vcpu.slot.index == 2:
            raise self.error
        super().realize_vcpu(vcpu)

    def power_on(self, vcpu: BackendVcpu, entry_point: int, args: Sequence[int]) -> None:
        super().power_on(vcpu, entry_point, args)


def _machine(error: Exception) -> VirtMachine:
    machine = VirtMachine(MachineConfig.build("cpus=1,maxcpus=4", plugins=NO_PLUGINS),
                          backend=_RaisesOnPlug(error))
    machine.realize()
    return machine


def test_a_backend_error_names_backend_method_and_cpu() -> None:
    machine = _machine(BackendError("no more engines"))
    try:
        with pytest.raises(BackendCallError) as info:
            machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
        assert str(info.value) == ("backend 'raises-on-plug': realize_vcpu(cpu 2) failed: "
                                   "no more engines")
        assert info.value.method == "realize_vcpu"
    finally:
        machine.shutdown()


def test_a_config_error_passes_through_unchanged() -> None:
    machine = _machine(ConfigError("no such CPU model"))
    try:
        with pytest.raises(ConfigError, match=r"^no such CPU model$"):
            machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
    finally:
        machine.shutdown()


def test_a_runtime_error_is_a_contract_violation_the_monitor_reports() -> None:
    machine = _machine(RuntimeError("out of threads"))
    try:
        before = machine.snapshot_bytes()
        with pytest.raises(ContractViolation) as info:
            machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
        assert isinstance(info.value.__cause__, RuntimeError)
        answer = Monitor(machine).execute("device_add max-arm-cpu,id=c2,core-id=2")
        assert answer == ("Error: backend 'raises-on-plug': realize_vcpu(cpu 2) raised "
                          "RuntimeError: out of threads (contract: realize_vcpu must raise "
                          "BackendError having undone its partial work)")
        assert machine.snapshot_bytes() == before
    finally:
        machine.shutdown()


def test_create_vcpu_must_return_a_vcpu_of_the_slot() -> None:
    class WrongSlot(NullBackend):
        name = "wrong-slot"

        def create_vcpu(self, slot: CpuSlot) -> BackendVcpu:
            if slot.index == 1:
                return NullVcpu(replace(slot, index=0))
            return super().create_vcpu(slot)

    machine = VirtMachine(MachineConfig.build("cpus=2,maxcpus=2", plugins=NO_PLUGINS),
                          backend=WrongSlot())
    with pytest.raises(ContractViolation, match=r"create_vcpu\(cpu 1\) returned "):
        machine.realize()
    machine.shutdown()
