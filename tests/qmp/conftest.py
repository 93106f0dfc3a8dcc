"""Fixtures: a ``cpus=4,maxcpus=6`` machine on the null backend, its guest, a QMP server."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vcpuhp import MachineConfig, VirtMachine
from vcpuhp.qmp import QmpServer, UnixAddress
from vcpuhp_null import GuestDriver

from .helpers import RawClient


@pytest.fixture
def machine() -> Iterator[VirtMachine]:
    """A realized machine: possible 0-5, enabled 0-3."""
    vm = VirtMachine(MachineConfig.build("cpus=4,maxcpus=6"))
    vm.realize()
    yield vm
    vm.shutdown()


@pytest.fixture
def guest(machine: VirtMachine) -> GuestDriver:
    """Plays the guest OS: answers hotplug requests, writes ``_OST``."""
    return GuestDriver(machine)


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short private directory (unix socket paths are limited to 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="vqmp") as directory:
        yield Path(directory)


@pytest.fixture
def server(machine: VirtMachine, socket_dir: Path) -> Iterator[QmpServer]:
    """A started QMP server on a unix socket."""
    qmp = QmpServer(machine, f"unix:{socket_dir / 'qmp.sock'}")
    qmp.start()
    yield qmp
    qmp.close()


@pytest.fixture
def qmp_path(server: QmpServer) -> str:
    """The server's socket path."""
    assert isinstance(server.address, UnixAddress)
    return str(server.address.path)


@pytest.fixture
def raw_client(qmp_path: str) -> Iterator[Callable[..., RawClient]]:
    """Factory of raw socket clients, all closed at teardown."""
    clients: list[RawClient] = []

    def make(*, negotiate: bool = True) -> RawClient:
        client = RawClient(qmp_path, negotiate=negotiate)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
