"""Testing a plugin: machines that load it (or not), a guest played by the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vcpuhp import MachineConfig, PluginManager, PolicyRefused, VirtMachine
from vcpuhp.errors import PluginError
from vcpuhp.plugin_settings import PluginSettings
from vcpuhp.testing.guest import ScriptedGuest
from vcpuhp_even_cores import EvenCores


@pytest.fixture
def machine(request: pytest.FixtureRequest) -> Iterator[VirtMachine]:
    """A null machine (``cpus=1,maxcpus=4``) with the plugin settings the test parametrizes."""
    settings = getattr(request, "param", PluginSettings())
    with VirtMachine(MachineConfig.build("cpus=1,maxcpus=4", accel="null",
                                         plugins=settings)) as made:
        yield made


def test_installed_means_loaded(machine: VirtMachine) -> None:
    assert isinstance(machine.plugins.pm.get_plugin("even-cores"), EvenCores)


def test_odd_cores_are_refused_and_the_machine_is_unchanged(machine: VirtMachine) -> None:
    before = machine.snapshot_bytes()
    with pytest.raises(PolicyRefused, match="even-cores: core-id 3 is not even"):
        machine.device_add("max-arm-cpu", "c3", **{"core-id": 3})
    assert machine.snapshot_bytes() == before


def test_even_cores_plug_and_unplug_and_are_counted(machine: VirtMachine) -> None:
    guest = ScriptedGuest(machine)  # plays the guest OS: the null backend runs no code
    machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
    guest.handle_hotplug()
    machine.device_del("c2")
    guest.handle_hotplug()
    plugin = machine.plugins.pm.get_plugin("even-cores")
    assert (plugin.plugged, plugin.unplugged) == (1, 1)


@pytest.mark.parametrize("machine", [PluginSettings(enable={"even-cores": {"parity": "odd"}})],
                         indirect=True)
def test_the_parity_option(machine: VirtMachine) -> None:
    machine.device_add("max-arm-cpu", "c3", **{"core-id": 3})
    with pytest.raises(PolicyRefused, match="core-id 2 is not odd"):
        machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})


@pytest.mark.parametrize("machine", [PluginSettings(disable=frozenset({"even-cores"}))],
                         indirect=True)
def test_disabled_per_machine(machine: VirtMachine) -> None:
    machine.device_add("max-arm-cpu", "c3", **{"core-id": 3})


def test_a_bad_option_stops_the_machine_naming_the_plugin() -> None:
    settings = PluginSettings(enable={"even-cores": {"parity": "prime"}})
    with pytest.raises(PluginError, match=r"plugin 'even-cores'.*parity='prime'; valid: even, odd"):
        VirtMachine(MachineConfig.build("cpus=1,maxcpus=2", accel="null", plugins=settings))


def test_the_object_can_be_registered_directly() -> None:
    plugins = PluginManager([EvenCores({"parity": "odd"})],
                            settings=PluginSettings(autoload=False))
    with VirtMachine(MachineConfig.build("cpus=1,maxcpus=4", accel="null"),
                     plugins=plugins) as machine, pytest.raises(PolicyRefused):
        machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
