"""Kernel images that are not files, and RAM the host refuses (issue 8, item 4)."""

from __future__ import annotations

import errno
import mmap
import os
import threading
from pathlib import Path

import pytest

from vcpuhp import MachineConfig, RunState, VirtMachine
from vcpuhp import memory as memory_module
from vcpuhp.errors import ConfigError
from vcpuhp.loader import load_image
from vcpuhp.memory import GuestMemory

RAM = 16 << 20


@pytest.fixture
def ram() -> GuestMemory:
    memory = GuestMemory(RAM)
    yield memory
    memory.close()


def test_dev_zero_is_refused_not_read_forever(ram: GuestMemory) -> None:
    with pytest.raises(ConfigError, match=r"/dev/zero is not a regular file \(a character "
                                          r"device\)"):
        load_image(Path("/dev/zero"), ram, ram.base)


def test_a_fifo_is_refused_without_blocking(ram: GuestMemory, tmp_path: Path) -> None:
    fifo = tmp_path / "kernel.fifo"
    os.mkfifo(fifo)
    errors: list[Exception] = []

    def load() -> None:
        try:
            load_image(fifo, ram, ram.base)
        except ConfigError as exc:
            errors.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # unblock the reader so the test run can end
        with open(fifo, "wb"):
            pass
        pytest.fail("loading a FIFO blocked")
    assert len(errors) == 1 and "is not a regular file (a FIFO)" in str(errors[0])


def test_an_image_larger_than_ram_is_refused_before_it_is_read(
    ram: GuestMemory, tmp_path: Path
) -> None:
    image = tmp_path / "huge.bin"
    with image.open("wb") as file:
        file.truncate(RAM + 1)  # sparse: costs no disk
    with pytest.raises(ConfigError, match=f"{RAM + 1} bytes\\) is larger than guest RAM"):
        load_image(image, ram, ram.base)


def test_a_directory_is_refused(ram: GuestMemory, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a regular file \\(a directory\\)"):
        load_image(tmp_path, ram, ram.base)


def test_ram_the_host_refuses_is_a_config_error_naming_size_and_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> mmap.mmap:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(memory_module.mmap, "mmap", refuse)
    machine = VirtMachine(MachineConfig.build("cpus=1,maxcpus=2", memory="64G"))
    with pytest.raises(ConfigError) as raised:
        machine.realize()
    message = str(raised.value)
    assert message.startswith("cannot reserve 64G of guest RAM: Cannot allocate memory; ")
    assert "the host has " in message and "available of" in message
    assert machine.run_state is RunState.PRELAUNCH
    assert machine.memory is None


def _heuristic_overcommit_limit() -> int | None:
    """RAM + swap when the kernel refuses single mappings larger than that (mode 0)."""
    try:
        if Path("/proc/sys/vm/overcommit_memory").read_text().strip() != "0":
            return None
        info = dict(line.split(":") for line in Path("/proc/meminfo").read_text().splitlines())
    except OSError:
        return None
    return (int(info["MemTotal"].split()[0]) + int(info["SwapTotal"].split()[0])) * 1024


def test_really_too_much_ram_is_a_config_error() -> None:
    limit = _heuristic_overcommit_limit()
    too_much = 255 << 30
    if limit is None or limit >= too_much:
        pytest.skip("this host's kernel would overcommit 255G")
    machine = VirtMachine(MachineConfig.build("cpus=1,maxcpus=2", memory="255G"))
    with pytest.raises(ConfigError, match="cannot reserve 255G of guest RAM"):
        machine.realize()
    assert machine.run_state is RunState.PRELAUNCH
