"""The AML encoder: each case keeps the ASL next to the bytes iasl emits for it."""

from __future__ import annotations

import pytest

from vcpuhp.acpi.aml import (
    ONE,
    ONES,
    ZERO,
    Acquire,
    Add,
    Aml,
    AmlEncodingError,
    And,
    Arg,
    Break,
    Buffer,
    Call,
    Concatenate,
    Decrement,
    DerefOf,
    Device,
    EisaId,
    Else,
    Field,
    FieldAccess,
    FieldLock,
    FieldUnit,
    FieldUpdate,
    If,
    Increment,
    Index,
    Integer,
    Interrupt,
    LAnd,
    LEqual,
    LGreater,
    LGreaterEqual,
    LLess,
    LLessEqual,
    LNot,
    LNotEqual,
    Local,
    LOr,
    Memory32Fixed,
    Method,
    Multiply,
    Mutex,
    Name,
    Noop,
    Not,
    Notify,
    Offset,
    OperationRegion,
    Or,
    Package,
    Path,
    RegionSpace,
    Release,
    Reserved,
    ResourceTemplate,
    Return,
    Scope,
    ShiftLeft,
    ShiftRight,
    SizeOf,
    Sleep,
    Store,
    String,
    Subtract,
    TermList,
    ToBuffer,
    ToInteger,
    While,
    Xor,
    eisa_id,
    name_string,
    pkg_length,
)

#: (ASL, term, AML). The same cases are compiled with iasl in test_acpi_aml_iasl.py.
CASES: list[tuple[str, Aml, bytes]] = [
    # integers
    ("Name (_UID, Zero)", Name("_UID", ZERO), b"\x08_UID\x00"),
    ("Name (_UID, One)", Name("_UID", ONE), b"\x08_UID\x01"),
    ("Name (ALL1, Ones)", Name("ALL1", ONES), b"\x08ALL1\xff"),
    ("Name (_UID, 0x05)", Name("_UID", 5), b"\x08_UID\x0a\x05"),
    ("Name (BYTE, 0xFF)", Name("BYTE", 0xFF), b"\x08BYTE\x0a\xff"),
    ("Name (WORD, 0x0100)", Name("WORD", 0x100), b"\x08WORD\x0b\x00\x01"),
    ("Name (DWRD, 0x00010000)", Name("DWRD", 0x10000), b"\x08DWRD\x0c\x00\x00\x01\x00"),
    ("Name (DWRD, 0x090C0000)", Name("DWRD", 0x090C0000), b"\x08DWRD\x0c\x00\x00\x0c\x09"),
    (
        "Name (QWRD, 0x0000004000000000)",
        Name("QWRD", 0x40_0000_0000),
        b"\x08QWRD\x0e\x00\x00\x00\x00\x40\x00\x00\x00",
    ),
    # strings, EISA ids, buffers, packages
    ('Name (_HID, "ACPI0007")', Name("_HID", "ACPI0007"), b"\x08_HID\x0dACPI0007\x00"),
    ('Name (_UID, "")', Name("_UID", String("")), b"\x08_UID\x0d\x00"),
    ('Name (_HID, EisaId ("PNP0A06"))', Name("_HID", EisaId("PNP0A06")),
     b"\x08_HID\x0c\x41\xd0\x0a\x06"),
    ('Name (_CID, EisaId ("PNP0A05"))', Name("_CID", EisaId("PNP0A05")),
     b"\x08_CID\x0c\x41\xd0\x0a\x05"),
    ("Name (BUF0, Buffer (0x03) {0x01, 0x02, 0x03})", Name("BUF0", b"\x01\x02\x03"),
     b"\x08BUF0\x11\x06\x0a\x03\x01\x02\x03"),
    ("Name (BUF1, Buffer (Zero) {})", Name("BUF1", Buffer(b"")), b"\x08BUF1\x11\x02\x00"),
    ("Name (PKG0, Package (0x03) {One, 0x02, \"x\"})", Name("PKG0", Package(1, 2, "x")),
     b"\x08PKG0\x12\x08\x03\x01\x0a\x02\x0dx\x00"),
    ("Name (PKG1, Package (Zero) {})", Name("PKG1", Package()), b"\x08PKG1\x12\x02\x00"),
    # name strings
    ("Scope (\\) {}", Scope("\\"), b"\x10\x03\x5c\x00"),
    ("Scope (\\_SB) {}", Scope("\\_SB"), b"\x10\x06\x5c_SB_"),
    ("Scope (_SB.CPUS) {}", Scope("_SB.CPUS"), b"\x10\x0a\x2e_SB_CPUS"),
    ("Scope (\\_SB.CPUS.C001) {}", Scope("\\_SB.CPUS.C001"),
     b"\x10\x10\x5c\x2f\x03_SB_CPUSC001"),
    ("Scope (^PRES) {}", Scope("^PRES"), b"\x10\x06^PRES"),
    ("Scope (^^PRES.CSEL) {}", Scope("^^PRES.CSEL"), b"\x10\x0c^^\x2ePRESCSEL"),
    # named objects
    ("Device (C000) {Name (_UID, Zero)}", Device("C000", Name("_UID", 0)),
     b"\x5b\x82\x0bC000\x08_UID\x00"),
    ("Method (_STA, 0, NotSerialized) {Return (0x0F)}",
     Method("_STA", 0, Return(0x0F)), b"\x14\x09_STA\x00\xa4\x0a\x0f"),
    ("Method (CSTA, 1, Serialized) {Return (Arg0)}",
     Method("CSTA", 1, Return(Arg(0)), serialized=True), b"\x14\x08CSTA\x09\xa4\x68"),
    ("Method (SYNC, 7, Serialized, 15) {}",
     Method("SYNC", 7, serialized=True, sync_level=15), b"\x14\x06SYNC\xff"),
    ("OperationRegion (OREG, SystemMemory, 0x090C0000, 0x0C)",
     OperationRegion("OREG", RegionSpace.SYSTEM_MEMORY, 0x090C0000, 12),
     b"\x5b\x80OREG\x00\x0c\x00\x00\x0c\x09\x0a\x0c"),
    ("OperationRegion (IOPT, SystemIO, 0x0CD8, One)",
     OperationRegion("IOPT", RegionSpace.SYSTEM_IO, 0xCD8, 1),
     b"\x5b\x80IOPT\x01\x0b\xd8\x0c\x01"),
    ("Mutex (MTX0, 0x00)", Mutex("MTX0"), b"\x5b\x01MTX0\x00"),
    ("Mutex (MTX1, 0x03)", Mutex("MTX1", 3), b"\x5b\x01MTX1\x03"),
    # fields: access type, lock rule, update rule, Offset and reserved gaps
    (
        "Field (PRST, ByteAcc, NoLock, WriteAsZeros) {Offset (0x04), CPEN, 1, CINS, 1, , 6,"
        " CCMD, 8}",
        Field("PRST", Offset(4), FieldUnit("CPEN", 1), FieldUnit("CINS", 1), Reserved(6),
              FieldUnit("CCMD", 8), access=FieldAccess.BYTE,
              update=FieldUpdate.WRITE_AS_ZEROS),
        b"\x5b\x81\x19PRST\x41\x00\x20CPEN\x01CINS\x01\x00\x06CCMD\x08",
    ),
    ("Field (PRST, DWordAcc, Lock, Preserve) {CSEL, 32}",
     Field("PRST", FieldUnit("CSEL", 32), access=FieldAccess.DWORD, lock=FieldLock.LOCK),
     b"\x5b\x81\x0bPRST\x13CSEL\x20"),
    ("Field (PRST, AnyAcc, NoLock, WriteAsOnes) {BIG, 4096}",
     Field("PRST", FieldUnit("BIG", 4096), access=FieldAccess.ANY,
           update=FieldUpdate.WRITE_AS_ONES),
     b"\x5b\x81\x0dPRST\x20BIG_\x80\x00\x01"),
    # control flow
    ("If (Arg0) {Noop}", If(Arg(0), Noop()), b"\xa0\x03\x68\xa3"),
    ("If (Arg0) {Noop} Else {Return (One)}", If(Arg(0), Noop(), orelse=[Return(ONE)]),
     b"\xa0\x03\x68\xa3\xa1\x03\xa4\x01"),
    ("Else {}", Else(), b"\xa1\x01"),
    ("While (One) {Break}", While(ONE, Break()), b"\xa2\x03\x01\xa5"),
    ("Sleep (0x0A)", Sleep(10), b"\x5b\x22\x0a\x0a"),
    # synchronisation
    ("Acquire (CPLK, 0xFFFF)", Acquire(Path("CPLK")), b"\x5b\x23CPLK\xff\xff"),
    ("Acquire (\\_SB.PRES.CPLK, 0x0010)", Acquire(Path("\\_SB.PRES.CPLK"), 0x10),
     b"\x5b\x23\x5c\x2f\x03_SB_PRESCPLK\x10\x00"),
    ("Release (CPLK)", Release(Path("CPLK")), b"\x5b\x27CPLK"),
    # data movement, locals and arguments
    ("Store (Arg0, Local0)", Store(Arg(0), Local(0)), b"\x70\x68\x60"),
    ("Store (Arg6, Local7)", Store(Arg(6), Local(7)), b"\x70\x6e\x67"),
    ("Store (0x0D, Local0)", Store(0x0D, Local(0)), b"\x70\x0a\x0d\x60"),
    ("Store (\\_SB.PRES.CDAT, Local2)", Store(Path("\\_SB.PRES.CDAT"), Local(2)),
     b"\x70\x5c\x2f\x03_SB_PRESCDAT\x62"),
    ("Return (Local0)", Return(Local(0)), b"\xa4\x60"),
    ("Notify (C004, Arg1)", Notify(Path("C004"), Arg(1)), b"\x86C004\x69"),
    ("Notify (\\_SB.PWRB, 0x80)", Notify(Path("\\_SB.PWRB"), 0x80),
     b"\x86\x5c\x2e_SB_PWRB\x0a\x80"),
    # arithmetic and logic
    ("Add (Local0, One, Local0)", Add(Local(0), 1, Local(0)), b"\x72\x60\x01\x60"),
    ("Subtract (Local0, 0x02, Local1)", Subtract(Local(0), 2, Local(1)),
     b"\x74\x60\x0a\x02\x61"),
    ("Multiply (Arg0, 0x50, Local0)", Multiply(Arg(0), 0x50, Local(0)),
     b"\x77\x68\x0a\x50\x60"),
    ("And (Local0, 0x08, )", And(Local(0), 8), b"\x7b\x60\x0a\x08\x00"),
    ("Or (Local0, 0x02, Local0)", Or(Local(0), 2, Local(0)), b"\x7d\x60\x0a\x02\x60"),
    ("Xor (Local0, Ones, Local1)", Xor(Local(0), ONES, Local(1)), b"\x7f\x60\xff\x61"),
    ("ShiftLeft (One, Arg0, Local0)", ShiftLeft(1, Arg(0), Local(0)), b"\x79\x01\x68\x60"),
    ("ShiftRight (Local0, 0x20, Local1)", ShiftRight(Local(0), 32, Local(1)),
     b"\x7a\x60\x0a\x20\x61"),
    ("Not (Local0, Local1)", Not(Local(0), Local(1)), b"\x80\x60\x61"),
    ("Increment (Local0)", Increment(Local(0)), b"\x75\x60"),
    ("Decrement (Local1)", Decrement(Local(1)), b"\x76\x61"),
    ("LEqual (Arg0, 0x05)", LEqual(Arg(0), 5), b"\x93\x68\x0a\x05"),
    ("LLess (Local0, 0x0200)", LLess(Local(0), 0x200), b"\x95\x60\x0b\x00\x02"),
    ("LGreater (Local0, Zero)", LGreater(Local(0), 0), b"\x94\x60\x00"),
    ("LNot (Local0)", LNot(Local(0)), b"\x92\x60"),
    ("LNotEqual (Local0, One)", LNotEqual(Local(0), 1), b"\x92\x93\x60\x01"),
    ("LLessEqual (Local0, One)", LLessEqual(Local(0), 1), b"\x92\x94\x60\x01"),
    ("LGreaterEqual (Local0, One)", LGreaterEqual(Local(0), 1), b"\x92\x95\x60\x01"),
    ("LAnd (Local0, Local1)", LAnd(Local(0), Local(1)), b"\x90\x60\x61"),
    ("LOr (Local0, Local1)", LOr(Local(0), Local(1)), b"\x91\x60\x61"),
    # conversions and references
    ("ToBuffer (Local0, Local1)", ToBuffer(Local(0), Local(1)), b"\x96\x60\x61"),
    ("ToInteger (Local0, )", ToInteger(Local(0)), b"\x99\x60\x00"),
    ("Concatenate (Local0, Local1, Local2)", Concatenate(Local(0), Local(1), Local(2)),
     b"\x73\x60\x61\x62"),
    ("SizeOf (Local0)", SizeOf(Local(0)), b"\x87\x60"),
    ("DerefOf (Index (Local0, One, ))", DerefOf(Index(Local(0), 1)), b"\x83\x88\x60\x01\x00"),
    # resource templates
    (
        "Name (_CRS, ResourceTemplate () {Memory32Fixed (ReadWrite, 0x09000000, 0x00001000, )})",
        Name("_CRS", ResourceTemplate(Memory32Fixed(0x0900_0000, 0x1000))),
        b"\x08_CRS\x11\x11\x0a\x0e\x86\x09\x00\x01\x00\x00\x00\x09\x00\x10\x00\x00\x79\x00",
    ),
    (
        "Name (_CRS, ResourceTemplate () {Memory32Fixed (ReadOnly, 0x1000, 0x10, )})",
        Name("_CRS", ResourceTemplate(Memory32Fixed(0x1000, 0x10, writeable=False))),
        b"\x08_CRS\x11\x11\x0a\x0e\x86\x09\x00\x00\x00\x10\x00\x00\x10\x00\x00\x00\x79\x00",
    ),
    (
        "Name (_CRS, ResourceTemplate () "
        "{Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, ) {0x21}})",
        Name("_CRS", ResourceTemplate(Interrupt(33))),
        b"\x08_CRS\x11\x0e\x0a\x0b\x89\x06\x00\x01\x01\x21\x00\x00\x00\x79\x00",
    ),
    (
        "Name (_CRS, ResourceTemplate () "
        "{Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) {0x29}})",
        Name("_CRS", ResourceTemplate(Interrupt(41, edge=True))),
        b"\x08_CRS\x11\x0e\x0a\x0b\x89\x06\x00\x03\x01\x29\x00\x00\x00\x79\x00",
    ),
    (
        "Name (_CRS, ResourceTemplate () "
        "{Interrupt (ResourceConsumer, Edge, ActiveLow, Shared, ,, ) {0x30, 0x31}})",
        Name("_CRS", ResourceTemplate(Interrupt(48, 49, edge=True, active_low=True,
                                                shared=True))),
        b"\x08_CRS\x11\x12\x0a\x0f\x89\x0a\x00\x0f\x02\x30\x00\x00\x00\x31\x00\x00\x00\x79\x00",
    ),
]

#: Method invocations need the callee declared, so they are tested in context.
CALL_CASES: list[tuple[str, Aml, bytes]] = [
    (
        "Method (CSTA, 1, NotSerialized) {Return (Arg0)}\n"
        "Method (_STA, 0, NotSerialized) {Return (CSTA (0x04))}",
        TermList(Method("CSTA", 1, Return(Arg(0))), Method("_STA", 0, Return(Call("CSTA", 4)))),
        b"\x14\x08CSTA\x01\xa4\x68\x14\x0d_STA\x00\xa4CSTA\x0a\x04",
    ),
    (
        "Method (CSCN, 0, NotSerialized) {}\nMethod (_EVT, 1, NotSerialized) {\\CSCN ()}",
        TermList(Method("CSCN", 0), Method("_EVT", 1, Call("\\CSCN"))),
        b"\x14\x06CSCN\x00\x14\x0b_EVT\x01\x5cCSCN",
    ),
]


@pytest.mark.parametrize(("asl", "term", "aml"), CASES + CALL_CASES, ids=lambda v: None)
def test_term_encodes_as_iasl_does(asl: str, term: Aml, aml: bytes) -> None:
    assert term.encode() == aml, asl
    assert bytes(term) == aml


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, b"\x01"),
        (62, b"\x3f"),  # 62 + 1 = 63: the largest one-byte PkgLength
        (63, b"\x41\x04"),  # 63 + 2 = 65
        (0xFFD, b"\x4f\xff"),  # 0xFFD + 2 = 0xFFF: the largest two-byte PkgLength
        (0xFFE, b"\x81\x00\x01"),  # 0xFFE + 3 = 0x1001
        (0xFFFFC, b"\x8f\xff\xff"),  # + 3 = 0xFFFFF: the largest three-byte PkgLength
        (0xFFFFD, b"\xc1\x00\x00\x01"),  # + 4 = 0x100001
        ((1 << 28) - 5, b"\xcf\xff\xff\xff"),  # + 4 = 2**28 - 1: the maximum
    ],
)
def test_pkg_length_counts_itself_at_every_size(length: int, encoded: bytes) -> None:
    assert pkg_length(length) == encoded


@pytest.mark.parametrize(
    ("bits", "encoded"),
    [(1, b"\x01"), (63, b"\x3f"), (64, b"\x40\x04"), (4095, b"\x4f\xff"),
     (4096, b"\x80\x00\x01"), ((1 << 28) - 1, b"\xcf\xff\xff\xff")],
)
def test_field_widths_are_plain_pkg_lengths(bits: int, encoded: bytes) -> None:
    assert pkg_length(bits, includes_self=False) == encoded


def test_pkg_length_rejects_what_aml_cannot_hold() -> None:
    with pytest.raises(AmlEncodingError, match="exceeds"):
        pkg_length((1 << 28) - 4)
    with pytest.raises(AmlEncodingError, match="negative"):
        pkg_length(-1)


def test_large_buffers_use_longer_pkg_lengths() -> None:
    small = Buffer(bytes(60)).encode()
    assert small[:4] == b"\x11\x3f\x0a\x3c"
    medium = Buffer(bytes(5000)).encode()
    assert medium[:3] == b"\x11\x8e\x38"  # 1 + 3 + 5000 + 3 - 1 = 5006 = 0x138E
    assert len(medium) == 1 + 3 + 3 + 5000


@pytest.mark.parametrize(
    ("path", "encoded"),
    [
        ("\\", b"\x5c\x00"),
        ("_SB", b"_SB_"),
        ("\\_SB", b"\x5c_SB_"),
        ("^", b"\x5e\x00"),
        ("^^C001", b"\x5e\x5eC001"),
        ("A.B", b"\x2eA___B___"),
        ("\\A.B.C.D", b"\x5c\x2f\x04A___B___C___D___"),
    ],
)
def test_name_strings(path: str, encoded: bytes) -> None:
    assert name_string(path) == encoded


@pytest.mark.parametrize("bad", ["abc", "1ABC", "ABCDE", "\\_SB..X", "A-B", "\\^A"])
def test_invalid_names_are_refused(bad: str) -> None:
    with pytest.raises(AmlEncodingError):
        name_string(bad)


@pytest.mark.parametrize(
    ("value", "width", "encoded"),
    [
        (0, None, b"\x00"),
        (1, None, b"\x01"),
        (2, None, b"\x0a\x02"),
        (0xFFFF, None, b"\x0b\xff\xff"),
        (0xFFFF_FFFF, None, b"\x0c\xff\xff\xff\xff"),
        (1 << 32, None, b"\x0e\x00\x00\x00\x00\x01\x00\x00\x00"),
        ((1 << 64) - 1, None, b"\x0e" + b"\xff" * 8),
        (0, 4, b"\x0c\x00\x00\x00\x00"),
        (1, 1, b"\x0a\x01"),
    ],
)
def test_integers(value: int, width: int | None, encoded: bytes) -> None:
    assert Integer(value, width).encode() == encoded


@pytest.mark.parametrize(("value", "width"), [(-1, None), (1 << 64, None), (256, 1), (1, 3)])
def test_integers_out_of_range_are_refused(value: int, width: int | None) -> None:
    with pytest.raises(AmlEncodingError):
        Integer(value, width).encode()


def test_eisa_ids() -> None:
    assert eisa_id("PNP0A06") == 0x060AD041
    assert eisa_id("PNP0C0C") == 0x0C0CD041
    with pytest.raises(AmlEncodingError, match="three upper-case letters"):
        eisa_id("pnp0a06")


def test_refusals_name_what_is_valid() -> None:
    with pytest.raises(AmlEncodingError, match="Local0-Local7"):
        Local(8)
    with pytest.raises(AmlEncodingError, match="Arg0-Arg6"):
        Arg(7)
    with pytest.raises(AmlEncodingError, match="0-7"):
        Method("BAD", 8)
    with pytest.raises(AmlEncodingError, match="255"):
        Package(*range(256))
    with pytest.raises(AmlEncodingError, match="backwards"):
        Field("R", FieldUnit("A", 16), Offset(1)).encode()
    with pytest.raises(AmlEncodingError, match="ASCII"):
        String("caf\u00e9")
    with pytest.raises(AmlEncodingError, match="32 bits"):
        Memory32Fixed(1 << 32, 1)
    with pytest.raises(AmlEncodingError, match="1-255"):
        Interrupt()
    with pytest.raises(TypeError, match="bool"):
        Store(True, Local(0)).encode()  # a bool is an int to the type checker


def test_deeply_nested_blocks_grow_their_pkg_lengths() -> None:
    inner = Device("DEV0", Name("_HID", "ACPI0007"), Name("DATA", bytes(100)))
    outer = Scope("\\_SB", *(inner for _ in range(50)))
    encoded = outer.encode()
    body = 5 + 50 * len(inner.encode())
    assert encoded[0] == 0x10
    assert encoded[1:4] == pkg_length(body)
