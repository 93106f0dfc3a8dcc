"""Malformed ELF kernels are a ConfigError naming the file and the problem, never a crash."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vcpuhp import memmap
from vcpuhp.errors import ConfigError
from vcpuhp.loader import LoadedImage, load_image
from vcpuhp.memory import GuestMemory

RAM_SIZE = 4 << 20
LOAD = memmap.KERNEL_LOAD_ADDR
CODE = bytes(range(16)) * 4


def elf(
    *,
    entry: int = LOAD,
    paddr: int = LOAD,
    filesz: int | None = None,
    memsz: int | None = None,
    offset: int | None = None,
    sh_link: int = 2,
    symbols: bool = True,
) -> bytes:
    """A little AArch64 ELF64: one PT_LOAD of ``CODE``, and a symbol table ``_start``."""
    ehsize, phentsize, shentsize = 64, 56, 64
    code_off = ehsize + phentsize
    strtab = b"\0_start\0"
    sym = struct.pack("<IBBHQQ", 0, 0, 0, 0, 0, 0) + struct.pack("<IBBHQQ", 1, 0x12, 0, 1,
                                                                  entry, 0)
    strtab_off = code_off + len(CODE)
    symtab_off = strtab_off + len(strtab)
    shoff = symtab_off + len(sym)
    sections = [
        struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        struct.pack("<IIQQQQIIQQ", 0, 2, 0, 0, symtab_off, len(sym), sh_link, 1, 8, 24),
        struct.pack("<IIQQQQIIQQ", 0, 3, 0, 0, strtab_off, len(strtab), 0, 0, 1, 0),
    ]
    if not symbols:
        sections, shoff = [], 0
    header = struct.pack(
        "<16sHHIQQQIHHHHHH",
        b"\x7fELF\x02\x01\x01" + bytes(9), 2, 183, 1, entry, ehsize, shoff, 0,
        ehsize, phentsize, 1, shentsize, len(sections), 0,
    )
    phdr = struct.pack(
        "<IIQQQQQQ", 1, 5, code_off if offset is None else offset, paddr, paddr,
        len(CODE) if filesz is None else filesz, len(CODE) if memsz is None else memsz, 8,
    )
    return header + phdr + CODE + strtab + sym + b"".join(sections)


@pytest.fixture
def memory() -> Iterator[GuestMemory]:
    ram = GuestMemory(RAM_SIZE, base=memmap.RAM_BASE)
    yield ram
    ram.close()


def _load(tmp_path: Path, memory: GuestMemory, data: bytes) -> LoadedImage:
    path = tmp_path / "kernel.elf"
    path.write_bytes(data)
    return load_image(path, memory, LOAD)


def test_a_well_formed_elf_loads_with_its_symbols(tmp_path: Path, memory: GuestMemory) -> None:
    image = _load(tmp_path, memory, elf())
    assert image.entry_point == LOAD and image.symbols == {"_start": LOAD}
    assert memory.read(LOAD, len(CODE)) == CODE


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        pytest.param(b"\x7fELF",
                     "truncated ELF header: the file has 4 bytes, the header needs 64",
                     id="magic-only"),
        pytest.param(elf()[:40], "truncated ELF header", id="short-header"),
        pytest.param(elf()[:80], "program header table (1 entries of 56 bytes at offset 64) "
                     "extends past the end of the file (80 bytes)", id="short-phdrs"),
        pytest.param(elf(offset=10_000), "segment 0: 64 bytes at file offset 10000 extend "
                     "past the end of the file", id="segment-past-eof"),
        pytest.param(elf(filesz=65, memsz=64),
                     "segment 0: file size 65 exceeds its memory size 64", id="filesz>memsz"),
        pytest.param(elf(filesz=8, memsz=0),
                     "segment 0: file size 8 exceeds its memory size 0", id="memsz-0"),
        pytest.param(elf(entry=0x1000),
                     "entry point 0x1000 is outside guest RAM 0x40000000-0x403fffff",
                     id="entry-below-ram"),
        pytest.param(elf(entry=memmap.RAM_BASE + RAM_SIZE - 2),
                     "entry point 0x403ffffe is outside", id="entry-straddles-ram-end"),
    ],
)
def test_malformed_elf_is_a_config_error_naming_file_and_problem(
    tmp_path: Path, memory: GuestMemory, data: bytes, problem: str
) -> None:
    before = memory.read(LOAD, len(CODE))
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, memory, data)
    assert str(info.value).startswith(f"{tmp_path / 'kernel.elf'}: ")
    assert problem in str(info.value)
    assert memory.read(LOAD, len(CODE)) == before, "nothing loaded from a rejected image"


@pytest.mark.parametrize("link", [0, 7, 0xFFFF])
def test_a_bad_symbol_table_link_is_ignored(
    tmp_path: Path, memory: GuestMemory, link: int
) -> None:
    image = _load(tmp_path, memory, elf(sh_link=link))
    assert image.symbols == {}
    assert memory.read(LOAD, len(CODE)) == CODE


def test_a_truncated_symbol_table_is_ignored(tmp_path: Path, memory: GuestMemory) -> None:
    image = _load(tmp_path, memory, elf()[:-100])
    assert image.symbols == {}


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cut=st.integers(4, len(elf())),
    flips=st.lists(st.tuples(st.integers(4, len(elf()) - 1), st.integers(0, 255)),
                   max_size=6),
)
def test_any_damaged_elf_loads_or_is_a_config_error(
    tmp_path: Path, memory: GuestMemory, cut: int, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(elf()[:cut])
    for position, value in flips:
        if position < len(data):
            data[position] = value
    try:
        _load(tmp_path, memory, bytes(data))
    except ConfigError as exc:
        assert str(tmp_path / "kernel.elf") in str(exc)
