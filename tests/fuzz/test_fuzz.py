"""The fuzz targets' short, deterministic CI run (the long mode is ``tox -e fuzz``).

Hypothesis drives each target for a fixed number of examples (derandomized
in CI by the ``ci`` profile); exhaustive loops cover what random bytes
rarely reach: every single byte, and short sequences, at every framing
position of a QMP stream, and a write of every device register.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vcpuhp import MachineConfig, VirtMachine, memmap
from vcpuhp.errors import VcpuhpError
from vcpuhp.qmp.framing import FramingError, MessageSplitter
from vcpuhp_null import GuestDriver

from . import targets


def fuzz(examples: int) -> settings:
    """Settings of a target's CI run: ``examples`` inputs, no deadline, no database."""
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])

_QMP_PIECES = [piece for seed in targets.SEEDS["qmp"] for piece in seed.split(b" ")] + [
    b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"\n", b"\x0b", b"1e999", b"null",
    b'"execute"', b'"arguments"', b'"id"', b'"device_del"', b'"x-timeout"', b'"core-id"']


@fuzz(2000)
@given(st.lists(st.one_of(st.sampled_from(_QMP_PIECES), st.binary(max_size=8)), max_size=40))
def test_qmp_streams(pieces: list[bytes]) -> None:
    targets.qmp(b"".join(pieces))


@fuzz(1500)
@given(st.lists(st.one_of(
    st.sampled_from([b"readb", b"readl", b"writel", b"writeb", b"psci", b"mrs", b"msr",
                     b"device_add", b"device_del", b"masks", b"start", b"0x9080000",
                     b"0x90b0000", b"0x90b0004", b"0x8000000", b"ICC_IAR1_EL1", b"CPU_ON_64",
                     b"max-arm-cpu,id=c2,core-id=2", b"c2", b"0", b"1", b"2", b"-1",
                     b"0xffffffffffffffff", b"\n", b" "]),
    st.binary(max_size=6)), max_size=40))
def test_the_null_line_protocol(words: list[bytes]) -> None:
    targets.protocol(b" ".join(words))


@fuzz(3000)
@given(st.text(alphabet="0123456789,=cpusmaxoketrdhl-x \0:unixtcpwaiternof/.[]GMK",
               max_size=60))
def test_option_parsers(text: str) -> None:
    targets.parsers(text.encode())


def _mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    patches = st.lists(st.tuples(st.integers(0, len(seed) - 1), st.binary(min_size=1,
                                                                          max_size=8)),
                       max_size=6)

    def apply(args: tuple[list[tuple[int, bytes]], int]) -> bytes:
        edits, cut = args
        data = bytearray(seed[: max(cut, 64)])
        for position, replacement in edits:
            data[position:position + len(replacement)] = replacement
        return bytes(data)

    return st.tuples(patches, st.integers(0, len(seed))).map(apply)


@fuzz(1500)
@given(st.one_of(_mutated(targets.elf_seed()), st.binary(max_size=512)))
def test_the_image_loader(data: bytes) -> None:
    targets.loader(data)


@fuzz(1500)
@given(st.binary(min_size=12, max_size=12 * 64))
def test_guest_mmio(data: bytes) -> None:
    targets.mmio(data)


def test_the_seeds() -> None:
    targets.run_seeds()


# -- exhaustive: framing positions --------------------------------------------------------

#: A request cut at positions that put the splitter in each of its states.
_REQUEST = b'{"execute": "query-status", "arguments": {"a": [1, "x\\"y"]}, "id": 12}'
_POSITIONS = sorted({0, 1, 2, 5, 11, 13, 27, 40, 46, 48, 52, 53, 55, 62, 66, len(_REQUEST)})


@pytest.mark.parametrize("position", _POSITIONS)
def test_every_byte_at_every_framing_position(position: int) -> None:
    """Each of the 256 bytes inserted at a framing position: the splitter ends, emits no
    empty frame, and the request on the next line still comes out whole, unless the byte
    opened a bracket (a request may span lines: it then waits for the rest, as QEMU's)."""
    follow = b'\n{"execute": "next"}\n'
    for byte in range(256):
        data = _REQUEST[:position] + bytes([byte]) + _REQUEST[position:] + follow
        for chunking in (len(data), 1):
            splitter = MessageSplitter()
            frames: list[bytes | FramingError] = []
            for start in range(0, len(data), chunking):
                frames += splitter.feed(data[start:start + chunking])
            assert b"" not in frames, (position, byte)
            assert len(frames) <= len(data)
            _assert_resynchronised(frames, splitter, bytes([byte]))


def _assert_resynchronised(frames: list[bytes | FramingError], splitter: MessageSplitter,
                           inserted: bytes) -> None:
    if frames and frames[-1] == b'{"execute": "next"}':
        assert splitter.pending == 0
        return
    assert set(inserted) & set(b"{["), (inserted, frames)
    assert 0 < splitter.pending <= splitter.limit, "an open bracket waits for its request"


_ALPHABET = b'{}[]",:\\ \n\x0b\x0c\x00\xff1ae'


def test_every_two_byte_sequence_at_every_framing_position() -> None:
    follow = b'\n{"execute": "next"}\n'
    for position in _POSITIONS:
        for pair in itertools.product(_ALPHABET, repeat=2):
            data = _REQUEST[:position] + bytes(pair) + _REQUEST[position:] + follow
            splitter = MessageSplitter()
            frames = splitter.feed(data)
            assert b"" not in frames, (position, pair)
            _assert_resynchronised(frames, splitter, bytes(pair))


@pytest.mark.parametrize("byte", range(256))
def test_every_byte_through_a_session(byte: int) -> None:
    """The same through a real QMP session: an answer per frame, and the server usable."""
    targets.qmp(b'{"execute": "query-status"}' + bytes([byte]) + b'\n{"execute": "cont"}\n')


# -- exhaustive: every device register ----------------------------------------------------


def test_a_write_of_every_device_register_leaves_the_machine_usable() -> None:
    """Every dword of the GIC distributor, CPU 0's redistributor frames, the UART, the
    GED and the CPU hotplug block is written (all ones, then zero) and read back."""
    machine = VirtMachine(MachineConfig.build("cpus=2,maxcpus=4", accel="null"))
    machine.realize()
    try:
        driver = GuestDriver(machine)
        driver.boot()
        redistributor = memmap.Region("gicr-cpu0", machine.gic.redistributor_base(0),
                                      0x2_0000)
        windows = (memmap.GICD, redistributor, memmap.UART, memmap.ACPI_GED,
                   memmap.CPU_HOTPLUG)
        for window in windows:
            for offset in range(0, window.size, 4):
                for value in (0xFFFF_FFFF, 0):
                    try:
                        machine.mmio_write(window.base + offset, 4, value)
                        machine.mmio_read(window.base + offset, 4)
                    except VcpuhpError:
                        pass
        machine.check_invariants()
        driver.boot()  # the guest can set the GIC up again and go on
        machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
        driver.handle_hotplug()
        assert machine.vcpus[2].online
        machine.check_invariants()
    finally:
        machine.shutdown()


def test_a_narrow_read_of_a_wide_register_fits_its_size() -> None:
    """Found by the mmio target: a 2-byte read of GICD_TYPER returned all 32 bits."""
    machine = VirtMachine(MachineConfig.build("cpus=2,maxcpus=4", accel="null"))
    with machine:
        typer = machine.mmio_read(memmap.GICD.base + 4, 4)
        assert typer > 0xFFFF
        assert machine.mmio_read(memmap.GICD.base + 4, 2) == typer & 0xFFFF
        assert machine.mmio_read(memmap.GICD.base + 4, 1) == typer & 0xFF
