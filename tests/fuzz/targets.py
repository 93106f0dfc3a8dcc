"""Fuzz targets: each takes arbitrary bytes and raises only when it finds a bug.

The same functions run under Hypothesis in CI (``tests/fuzz/test_fuzz.py``,
short and deterministic) and under atheris/libFuzzer for a person
(``tox -e fuzz -- --minutes 30``, ``tests/fuzz/run.py``, coverage-guided,
keeping a corpus). A "bug" is anything other than the documented refusal:
an exception that is not a :class:`~vcpuhp.errors.VcpuhpError`, a reply that
is not JSON, an ``internal error``, a hang, or a machine whose invariants no
longer hold.

Targets: ``qmp`` (a QMP byte stream through a real session), ``protocol``
(the null backend's line protocol), ``parsers`` (``-smp``, ``-accel``,
``-qmp``, ``-m``), ``loader`` (ELF and raw images), ``mmio`` (guest reads and
writes of every device register).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from vcpuhp import MachineConfig, VirtMachine, memmap
from vcpuhp.errors import VcpuhpError
from vcpuhp.machine import RunState

MACHINE_REUSE: Final = 200
"""Inputs a shared machine serves before it is replaced (state would drift far)."""
SESSION_TIMEOUT: Final = 30.0
"""A session that has not finished its input by then is a hang."""
MAX_INPUT: Final = 4096


class _Machines:
    """One realized null machine per target, replaced now and then and after shutdown."""

    def __init__(self, smp: str = "cpus=2,maxcpus=4") -> None:
        self._smp = smp
        self._machine: VirtMachine | None = None
        self._uses = 0

    def get(self) -> VirtMachine:
        machine = self._machine
        if machine is None or machine.is_shut_down or self._uses >= MACHINE_REUSE:
            if machine is not None:
                machine.shutdown()
            machine = VirtMachine(MachineConfig.build(self._smp, accel="null"))
            machine.realize()
            self._machine, self._uses = machine, 0
        self._uses += 1
        return machine


# -- QMP byte streams ---------------------------------------------------------------------


class _Transport:
    def __init__(self) -> None:
        self.aborted = False

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        self.aborted = True


class _Writer:
    """Enough of an asyncio StreamWriter for a QmpSession: collects what is sent."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.transport = _Transport()
        self._closed = False

    def get_extra_info(self, name: str) -> object:
        return "fuzz"

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    async def drain(self) -> None:
        return None

    async def wait_closed(self) -> None:
        return None


class _Host:
    """The session's server: machine calls inline, events flushed before each reply."""

    def __init__(self, machine: VirtMachine) -> None:
        self.machine = machine
        self.quit_requested = False

    async def run_in_worker(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        finally:
            self.machine.events.flush()

    def broadcast(self, message: dict[str, Any]) -> None:
        return None

    async def quit(self) -> None:
        self.quit_requested = True
        self.machine.shutdown()


_qmp_machines = _Machines()


async def _session(machine: VirtMachine, data: bytes) -> tuple[_Writer, _Host]:
    from vcpuhp.qmp.session import QmpSession

    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    writer = _Writer()
    host = _Host(machine)
    session = QmpSession(host, reader, writer)  # type: ignore[arg-type]
    await asyncio.wait_for(session.run(), SESSION_TIMEOUT)
    return writer, host


def qmp(data: bytes) -> None:
    """A QMP client's bytes: negotiated first (so commands run), then ``data``."""
    machine = _qmp_machines.get()
    stream = b'{"execute": "qmp_capabilities"}\n' + data[:MAX_INPUT]
    writer, _ = asyncio.run(_session(machine, stream))
    lines = bytes(writer.data).split(b"\r\n")
    assert lines[-1] == b"", "every message ends with CRLF"
    replies = 0
    for line in lines[:-1]:
        message = json.loads(line)  # must be JSON (no Infinity, NaN ...)
        assert isinstance(message, dict) and len(set(message) & {"QMP", "return", "error",
                                                                 "event"}) == 1, message
        if "error" in message:
            assert "internal error" not in message["error"]["desc"], message
        replies += "return" in message or "error" in message
    assert replies <= stream.count(b"{") + stream.count(b"[") + len(stream), "bounded replies"
    if not machine.is_shut_down:
        machine.check_invariants()


# -- the null line protocol ---------------------------------------------------------------

_protocol_machines = _Machines()


def protocol(data: bytes) -> None:
    """Lines of the null backend's test protocol."""
    from vcpuhp_null.protocol import CommandInterpreter

    machine = _protocol_machines.get()
    interpreter = CommandInterpreter(machine)
    for raw in data[:MAX_INPUT].split(b"\n")[:64]:
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError:
            continue  # the server refuses non-ASCII before the interpreter sees it
        reply = interpreter.execute(line.strip())
        assert reply.startswith(("OK", "ERR")) and "\n" not in reply, reply
        assert "internal error" not in reply, (line, reply)
        if machine.is_shut_down:
            return
    machine.events.flush()
    machine.check_invariants()


# -- option parsers -----------------------------------------------------------------------


def parsers(data: bytes) -> None:
    """``-smp``, ``-accel``, ``-qmp`` and ``-m`` values: a result or a ConfigError."""
    from vcpuhp.cli.options import parse_accel, parse_memory, parse_qmp, parse_unplug_timeout
    from vcpuhp.config import parse_memory_size
    from vcpuhp.topology import SmpConfig, Topology

    text = data[:512].decode("utf-8", "replace")
    smp_text, _, rest = text.partition("\0")
    for parse in (parse_accel, parse_qmp, parse_unplug_timeout,
                  lambda t: parse_memory_size(parse_memory(t))):
        with contextlib.suppress(VcpuhpError):
            parse(rest)
    try:
        smp = SmpConfig.parse(smp_text)
    except VcpuhpError:
        return
    assert 1 <= smp.cpus <= smp.maxcpus
    assert smp.sockets * smp.clusters * smp.cores * smp.threads == smp.maxcpus
    slots = Topology(smp).slots
    assert len({s.arch_id for s in slots}) == len(slots), "arch ids are unique"


# -- the image loader ---------------------------------------------------------------------

_LOADER_RAM: Final = 16 << 20
_loader_state: dict[str, Any] = {}


def loader(data: bytes) -> None:
    """An image file: loaded (entry in RAM) or refused with a ConfigError."""
    from vcpuhp.loader import load_image
    from vcpuhp.memory import GuestMemory

    if "memory" not in _loader_state:
        directory = Path(tempfile.mkdtemp(prefix="vfuzz"))
        _loader_state.update(memory=GuestMemory(_LOADER_RAM), path=directory / "image")
    memory: GuestMemory = _loader_state["memory"]
    path: Path = _loader_state["path"]
    path.write_bytes(data)
    try:
        image = load_image(path, memory, memory.base)
    except VcpuhpError:
        return
    assert memory.contains(image.entry_point, 4), image
    assert memory.base <= image.low <= image.high <= memory.base + memory.size, image


def elf_seed() -> bytes:
    """The bundled guest's ELF image: a seed that mutations can explore from."""
    from vcpuhp.boot import bundled_image

    return bundled_image().read_bytes()


# -- guest MMIO ---------------------------------------------------------------------------

_mmio_machines = _Machines("cpus=2,maxcpus=4")
#: Every device window a guest can touch (the GIC's, the GED, the hotplug block, the UART).
MMIO_REGIONS: Final = (memmap.GICD, memmap.GICR_REGION0, memmap.UART, memmap.ACPI_GED,
                       memmap.CPU_HOTPLUG)
_ACCESS: Final = struct.Struct("<BBHQ")
_SIZES: Final = (1, 2, 4, 8)


def mmio(data: bytes) -> None:
    """Guest reads and writes: each 12 bytes pick a region, an offset, a size and a value."""
    machine = _mmio_machines.get()
    usable = len(data) - len(data) % _ACCESS.size
    for start in range(0, min(usable, 64 * _ACCESS.size), _ACCESS.size):
        region_pick, size_pick, offset, value = _ACCESS.unpack_from(data, start)
        region = MMIO_REGIONS[region_pick % len(MMIO_REGIONS)]
        size = _SIZES[size_pick % len(_SIZES)]
        write, cpu = bool(size_pick & 0x80), (size_pick >> 4) % len(machine.vcpus)
        address = region.base + (offset * 4 + (size_pick >> 2) % 4) % region.size
        address -= address % size  # accesses are naturally aligned
        try:
            if write:
                machine.mmio_write(address, size, value & ((1 << (8 * size)) - 1), cpu=cpu)
            else:
                result = machine.mmio_read(address, size, cpu=cpu)
                assert 0 <= result < 1 << (8 * size), (hex(address), size, result)
        except VcpuhpError:
            pass
        if machine.run_state is RunState.SHUTDOWN:
            return
    machine.events.flush()
    machine.check_invariants()


TARGETS: Final[dict[str, Callable[[bytes], None]]] = {
    "qmp": qmp, "protocol": protocol, "parsers": parsers, "loader": loader, "mmio": mmio,
}

#: Inputs every run starts from (atheris seeds its corpus with them).
SEEDS: Final[dict[str, list[bytes]]] = {
    "qmp": [b'{"execute": "query-status"}\n',
            b'{"execute": "device_add", "arguments": {"driver": "max-arm-cpu", "id": "c2", '
            b'"core-id": 2}, "id": 1}\n{"execute": "device_del", "arguments": {"id": "c2"}}\n',
            b'{"execute": "qom-list", "arguments": {"path": "/machine"}}',
            b'{"execute": "human-monitor-command", "arguments": {"command-line": "info cpus"}}',
            b'{"execute": "query-qmp-schema"}{"execute": "query-commands"},'],
    "protocol": [b"masks\nreadl 0x9080000\npsci 0 CPU_ON_64 0x80000001 0x40200000 1\n",
                 b"device_add max-arm-cpu,id=c2,core-id=2\ndevice_del c2\nwritel 0x90b0000 2\n",
                 b"mrs 0 ICC_IAR1_EL1\nmsr 0 ICC_EOIR1_EL1 41\nwriteb 0x90b0004 8\n"],
    "parsers": [b"cpus=2,maxcpus=8,sockets=2\0null,defer-start=on",
                b"4\0unix:/tmp/q.sock,server=on,wait=off", b"maxcpus=512\0size=1G"],
    "loader": [b"\x7fELF\x02\x01\x01" + bytes(57), b"\x00" * 64],
    "mmio": [bytes(range(96)), b"\x04\x81\x00\x00" + (8).to_bytes(8, "little") * 4],
}


def run_seeds() -> None:
    """Run every target on its seeds (a quick self-check of the harness)."""
    for name, target in TARGETS.items():
        for seed in SEEDS[name]:
            target(seed)


if os.environ.get("VCPUHP_FUZZ_SELFTEST"):
    run_seeds()
