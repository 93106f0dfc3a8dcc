r"""ACPICA's interpreter runs the DSDT: every CPU method evaluates, and does what it should.

``acpiexec`` loads the DSDT (plus, where a test needs one, a small SSDT of
test methods built with the same AML encoder) and reads debugger commands
from stdin (``-b`` batch mode limits the command line and sleeps a second per
run). Its SystemMemory regions are simulated: reads return what was last
written, or the ``-fv`` fill value. ``-vr`` traces every region access,
which the tests replay against the machine's own register block models.

Any ACPICA complaint in the output fails a test (``acpi_testlib.PROBLEM_RE``:
``AE_*`` statuses, "ACPI Error", "ACPI Warning", exceptions...).

Coverage: in every topology (512 CPUs included) a test method evaluates each
``Cxxx._STA`` and ``_MAT`` from AML. External evaluation, which also applies
ACPICA's checks of predefined names as an OS would see them, runs on every
CPU of the small topologies and on a sample of 512 (each command costs
acpiexec ~10 ms).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from acpi_testlib import ACPIEXEC, TOPOLOGIES, make_machine, problems, requires_acpiexec

from vcpuhp import memmap
from vcpuhp.acpi import build_tables
from vcpuhp.acpi.aml import (
    DEBUG,
    ONE,
    Arg,
    Call,
    Method,
    Store,
    TermList,
)
from vcpuhp.acpi.aml import (
    Path as AmlPath,
)
from vcpuhp.acpi.tables import gicc_entry, sdt
from vcpuhp.acpi.tables.madt import GiccInfo
from vcpuhp.devices import AcpiGed, CpuHotplugRegisters
from vcpuhp.machine import VirtMachine

pytestmark = requires_acpiexec

SAMPLE_512 = [0, 1, 2, 3, 4, 5, 122, 123, 124, 255, 256, 510, 511]
STA_DISABLED, STA_ENABLED = 0xD, 0xF
NOTIFY_RE = re.compile(r"Dispatching Notify on \[(\w+)\] \(\w+\) Value 0x([0-9A-Fa-f]+)")
"""ACPICA's own log of each Notify the interpreter queues (``-x 4``, ACPI_LV_INFO),
written synchronously, unlike acpiexec's handlers, which run on detached
threads and may not have printed before ``quit``."""
DEBUG_INFO_RE = re.compile(r"^\s*(?:\w+-\d+ \[\d+\]|[A-Z]\w*\s{2,}: )")
"""A line of ACPICA's debug-level log (informational by definition: errors and
warnings are printed as "ACPI Error" / "ACPI Warning" lines of their own):
``nsload-123 [04] NsLoadTable      : ...``, or only its ``NsLoadTable      : ...``
part when a Notify handler thread's output split the line after its prefix."""
TRACE_RE = re.compile(
    r"SystemMemory (Read |Write): Val ([0-9A-Fa-f]+) Addr ([0-9A-Fa-f]+) BitWidth ([0-9A-Fa-f]+)"
)


def _device(index: int) -> str:
    return rf"\_SB.CPUS.C{index:03X}"


@dataclass
class Evaluation:
    """One ``evaluate`` command's outcome."""

    path: str
    value: int | bytes | None
    text: str


def _hex_dump(lines: list[str]) -> bytes:
    data = bytearray()
    for line in lines:
        match = re.match(r"^\s+[0-9A-Fa-f]{4}: ((?:[0-9A-Fa-f]{2} )+)", line)
        if not match:
            break
        data += bytes.fromhex(match.group(1))
    return bytes(data)


def _evaluations(output: str) -> list[Evaluation]:
    blocks = re.split(r"^(?=Evaluating )", output, flags=re.MULTILINE)[1:]
    results = []
    for block in blocks:
        lines = block.splitlines()
        path = lines[0].removeprefix("Evaluating ").strip()
        value: int | bytes | None
        if any(line.startswith("No object was returned") for line in lines):
            value = None
        elif (match := re.search(r"\[Integer\] = ([0-9A-Fa-f]+)", block)) is not None:
            value = int(match.group(1), 16)
        elif (match := re.search(r"\[Buffer\] Length ([0-9A-Fa-f]+) =", block)) is not None:
            start = next(i for i, line in enumerate(lines) if "[Buffer]" in line) + 1
            value = _hex_dump(lines[start:])
            assert len(value) == int(match.group(1), 16)
        else:
            raise AssertionError(f"evaluation of {path} returned nothing usable:\n{block}")
        results.append(Evaluation(path, value, block))
    return results


def _debug_values(output: str) -> list[int | bytes]:
    lines = output.splitlines()
    values: list[int | bytes] = []
    for n, line in enumerate(lines):
        if not line.startswith("ACPI Debug:"):
            continue
        text = line.removeprefix("ACPI Debug:").strip()
        if text.startswith("Buffer"):
            values.append(_hex_dump(lines[n + 1 :]))
        else:
            values.append(int(text, 16))
    return values


def acpiexec(
    directory: Path,
    tables: list[str],
    commands: list[str],
    *,
    fill: int | None = None,
    trace: bool = False,
    log_notifies: bool = False,
) -> str:
    """Run ``commands`` in acpiexec over ``tables``; fail on any ACPICA complaint."""
    assert ACPIEXEC is not None
    args = [ACPIEXEC, "-r"]
    if log_notifies:
        args += ["-x", "4"]
    if trace:
        args.append("-vr")
    if fill is not None:
        args += ["-fv", f"{fill:#x}"]
    result = subprocess.run(
        [*args, *tables], input="\n".join([*commands, "quit"]) + "\n",
        cwd=directory, capture_output=True, text=True, timeout=300, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "ACPI AML tables successfully acquired and loaded" in output, output
    complaints = [line for line in problems(output)
                  if not NOTIFY_TEARDOWN_RE.search(line) and not DEBUG_INFO_RE.match(line)]
    assert complaints == [], "\n".join(complaints)
    return output


NOTIFY_TEARDOWN_RE = re.compile(
    r"ACPI Error: \d+ \(0x[0-9A-Fa-f]+\) Outstanding cache allocations"
)
"""acpiexec runs each Notify handler on a detached thread (AcpiOsExecute in its
osunixxf.c); on ``quit`` it tears ACPICA down while handlers of a scan that
notified hundreds of CPUs may still hold state-cache objects, and reports them.
That race is the tool's: it comes and goes from run to run over the same tables."""


def _test_ssdt(*methods: Method) -> bytes:
    return sdt(b"SSDT", 2, TermList(*methods).encode())


@pytest.fixture(scope="module", params=sorted(TOPOLOGIES))
def dumped(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[VirtMachine, Path]:
    machine = make_machine(TOPOLOGIES[request.param])
    directory = tmp_path_factory.mktemp(f"acpiexec-{request.param}")
    build_tables(machine.description).dump(directory)
    return machine, directory


def _expected_mat(machine: VirtMachine, index: int) -> bytes:
    return gicc_entry(GiccInfo(index, machine.topology.slots[index].arch_id, enabled=True))


@pytest.mark.parametrize(("fill", "status"), [(0x00, STA_DISABLED), (0x01, STA_ENABLED)])
def test_every_cpu_device_sta_and_mat_evaluate_from_aml(
    dumped: tuple[VirtMachine, Path], fill: int, status: int
) -> None:
    """_STA is always Present; Enabled follows CPEN. _MAT is the GICC with Enabled set."""
    machine, directory = dumped
    count = len(machine.topology.slots)
    terms = []
    for index in range(count):
        terms += [Store(AmlPath(f"{_device(index)}._STA"), DEBUG),
                  Store(AmlPath(f"{_device(index)}._MAT"), DEBUG)]
    (directory / "all.dat").write_bytes(_test_ssdt(Method(r"\TALL", 0, *terms)))
    output = acpiexec(directory, ["dsdt.dat", "all.dat"], [r"evaluate \TALL"], fill=fill)
    values = _debug_values(output)
    assert values[0::2] == [status] * count
    assert values[1::2] == [_expected_mat(machine, index) for index in range(count)]


class _Controller:
    """Records what the register block asks of the machine."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.ejected: list[int] = []
        self.osts: list[tuple[int, int, int]] = []

    def eject(self, index: int) -> None:
        self.ejected.append(index)

    def ost(self, index: int, event: int, status: int) -> None:
        self.osts.append((index, event, status))

    def guest_error(self, message: str) -> None:
        self.errors.append(message)


def _replay(machine: VirtMachine, evaluations: list[Evaluation]) -> _Controller:
    """Replay the traced region accesses on the machine's register block models."""
    controller = _Controller()
    block = CpuHotplugRegisters(machine.vcpus, controller)
    ged = AcpiGed(lambda: None, controller.guest_error)
    for evaluation in evaluations:
        for kind, value, addr, width in TRACE_RE.findall(evaluation.text):
            address, size, data = int(addr, 16), int(width, 16) // 8, int(value, 16)
            if memmap.CPU_HOTPLUG.contains(address, size):
                device, offset = block, address - memmap.CPU_HOTPLUG.base
            elif memmap.ACPI_GED.contains(address, size):
                device, offset = ged, address - memmap.ACPI_GED.base  # type: ignore[assignment]
            else:
                raise AssertionError(f"{evaluation.path} accessed {address:#x}, no device there")
            if kind == "Write":
                device.write(offset, size, data)
            else:
                device.read(offset, size)
    return controller


def test_every_cpu_method_evaluates_as_an_os_would_call_it(
    dumped: tuple[VirtMachine, Path]
) -> None:
    machine, directory = dumped
    count = len(machine.topology.slots)
    indices = SAMPLE_512 if count == 512 else list(range(count))
    ejectable = [i for i in indices if i >= machine.config.smp.cpus and i != 0]
    # The scan first: it selects the CPU that command data names, and
    # acpiexec's simulated command data is what _OST last wrote there.
    commands = [r"evaluate \_SB.CPUS.CSCN", r"evaluate \_SB.GED._EVT 41"]
    for index in indices:
        device = _device(index)
        commands += [f"evaluate {device}._STA", f"evaluate {device}._MAT",
                     f"evaluate {device}._OST 0x03 0x80 (00)"]
    commands += [f"evaluate {_device(index)}._EJ0 1" for index in ejectable]
    commands.append(r"evaluate \_SB.CPUS.COST 0 1 2")
    output = acpiexec(directory, ["dsdt.dat"], commands, trace=True)
    evaluations = _evaluations(output)
    assert [e.path for e in evaluations] == [c.split()[1] for c in commands]
    by_path = {e.path: e.value for e in evaluations}
    for index in indices:
        assert by_path[f"{_device(index)}._STA"] == STA_DISABLED
        assert by_path[f"{_device(index)}._MAT"] == _expected_mat(machine, index)
    controller = _replay(machine, evaluations)
    assert controller.errors == []
    assert controller.ejected == ejectable
    assert controller.osts == [(index, 3, 0x80) for index in indices] + [(0, 1, 2)]


def _notifies(output: str) -> list[tuple[str, int]]:
    return [(name, int(value, 16)) for name, value in NOTIFY_RE.findall(output)]


def test_scan_notifies_the_cpu_with_an_event_and_is_bounded(
    dumped: tuple[VirtMachine, Path]
) -> None:
    r"""CSCN: insert -> Notify (Cxxx, 1); remove -> Notify (Cxxx, 3); never unbounded.

    acpiexec's simulated register block never clears the event, so the
    scan runs into its bound: two passes per possible CPU.
    """
    machine, directory = dumped
    count = len(machine.topology.slots)
    target = count - 1
    ssdt = _test_ssdt(
        Method(r"\TINS", 1, Store(Arg(0), AmlPath(r"\_SB.PRES.CDAT")),
               Store(ONE, AmlPath(r"\_SB.PRES.CINS")), Call(r"\_SB.CPUS.CSCN")),
        Method(r"\TRMV", 1, Store(Arg(0), AmlPath(r"\_SB.PRES.CDAT")),
               Store(ONE, AmlPath(r"\_SB.PRES.CRMV")), Call(r"\_SB.CPUS.CSCN")),
        Method(r"\TNON", 1, Store(Arg(0), AmlPath(r"\_SB.PRES.CDAT")),
               Store(ONE, AmlPath(r"\_SB.PRES.CPEN")), Call(r"\_SB.CPUS.CSCN")),
    )
    (directory / "scan.dat").write_bytes(ssdt)
    device = f"C{target:03X}"
    for method, value in ((r"\TINS", 1), (r"\TRMV", 3), (r"\TNON", None)):
        output = acpiexec(directory, ["dsdt.dat", "scan.dat"], [f"evaluate {method} {target}"],
                          log_notifies=True)
        expected = [] if value is None else [(device, value)] * (2 * count)
        assert _notifies(output) == expected, method


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (0x0, []),
        (0x8, [("CPU", 1)]),
        (0x2, [("PWRB", 0x80)]),
        (0xA, [("CPU", 1), ("PWRB", 0x80)]),
    ],
)
def test_ged_event_dispatches_on_the_selector_bits(
    dumped: tuple[VirtMachine, Path], events: int, expected: list[tuple[str, int]]
) -> None:
    machine, directory = dumped
    count = len(machine.topology.slots)
    target = min(4, count - 1)
    ssdt = _test_ssdt(
        Method(r"\TGED", 2, Store(Arg(0), AmlPath(r"\_SB.PRES.CDAT")),
               Store(ONE, AmlPath(r"\_SB.PRES.CINS")),
               Store(Arg(1), AmlPath(r"\_SB.GED.ESEL")),
               Call(r"\_SB.GED._EVT", 41)),
    )
    (directory / "ged.dat").write_bytes(ssdt)
    output = acpiexec(directory, ["dsdt.dat", "ged.dat"], [rf"evaluate \TGED {target} {events}"],
                      log_notifies=True)
    device = f"C{target:03X}"
    notifies = _notifies(output)
    want = []
    for name, value in expected:
        want += [(device, value)] * (2 * count) if name == "CPU" else [(name, value)]
    assert notifies == want, "queued in the order _EVT notifies"
