"""Fixtures for the core tests: machines on the null backend with a test-driver guest."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from vcpuhp import MachineConfig, VirtMachine
from vcpuhp_null import GuestDriver


@pytest.fixture
def null_machine() -> Iterator[Callable[..., VirtMachine]]:
    """Factory of realized null-backend machines, shut down at teardown."""
    made: list[VirtMachine] = []

    def make(smp: str = "cpus=4,maxcpus=6", **kwargs: object) -> VirtMachine:
        machine = VirtMachine(MachineConfig.build(smp, accel="null", **kwargs))  # type: ignore[arg-type]
        machine.realize()
        made.append(machine)
        return machine

    yield make
    for machine in made:
        machine.shutdown()


@pytest.fixture
def seed(null_machine: Callable[..., VirtMachine]) -> tuple[VirtMachine, GuestDriver]:
    """The seed machine (cpus=4,maxcpus=6) after the guest booted with maxcpus=2."""
    machine = null_machine("cpus=4,maxcpus=6")
    driver = GuestDriver(machine)
    driver.boot(maxcpus=2)
    return machine, driver


@pytest.fixture
def booted(
    null_machine: Callable[..., VirtMachine],
) -> Callable[..., tuple[VirtMachine, GuestDriver]]:
    """Factory: a null machine whose test-driver guest has booted (GIC set up, CPUs online)."""

    def make(smp: str, **kwargs: object) -> tuple[VirtMachine, GuestDriver]:
        machine = null_machine(smp, **kwargs)
        driver = GuestDriver(machine)
        driver.boot()
        return machine, driver

    return make
