"""The cffi declarations of vcpuhp-kvm against the real arm64 KVM UAPI headers.

A C file that includes ``<linux/kvm.h>`` and ``<asm/kvm.h>`` from
``/usr/aarch64-linux-gnu/include`` (Debian ``linux-libc-dev-arm64-cross``)
records, as one ``unsigned long long`` each, the size and offset of every
field of every struct declared in :mod:`vcpuhp_kvm.cdefs`, every ioctl number
and constant of :mod:`vcpuhp_kvm.uapi` and every register id of
:mod:`vcpuhp_kvm.regs`. ``aarch64-linux-gnu-gcc -c`` compiles it (nothing
runs), ``aarch64-linux-gnu-objcopy`` extracts the array's section, and each
value is compared with the Python side (``ffi.sizeof`` / ``ffi.offsetof`` are
the host's layout: every declared field is a fixed-width integer, laid out
alike by every LP64 ABI, x86_64 and arm64 included).

Bookworm's arm64 headers are Linux 6.1, older than the SMCCC filter (6.4).
When the headers lack it, the C file declares those few definitions itself,
transcribed in shape from Linux 6.4's ``arch/arm64/include/uapi/asm/kvm.h``
(as carried by QEMU's "linux-headers: Update to v6.4-rc1") with the values
documented in ``Documentation/virt/kvm/devices/vm.rst`` (KVM_ARM_VM_SMCCC_CTRL
group 0, KVM_ARM_VM_SMCCC_FILTER attribute 0, actions HANDLE 0 / DENY 1 /
FWD_TO_USER 2) and ``api.rst`` (KVM_HYPERCALL_EXIT_SMC bit 0,
KVM_HYPERCALL_EXIT_16BIT bit 1); with newer headers it uses theirs.

The tools are Debian packages that ``.ci/run`` installs; without them these
tests fail (they are never skipped).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vcpuhp_kvm import regs, uapi
from vcpuhp_kvm.cdefs import STRUCTS, ffi
from vcpuhp_kvm.vm import irq_line_number

SYSROOT_INCLUDE = Path("/usr/aarch64-linux-gnu/include")
CC = "aarch64-linux-gnu-gcc"
OBJCOPY = "aarch64-linux-gnu-objcopy"
SECTION = ".vcpuhp_abi"

PARTIAL_STRUCTS = {"kvm_regs": "declared up to spsr[] only: an offset table for core register ids"}
"""Structs whose total size is not compared, and why (their field offsets still are)."""

PRELUDE = r"""
#include <stddef.h>
#include <linux/version.h>
#include <linux/kvm.h>
#include <asm/kvm.h>

#if !defined(__aarch64__) || !defined(KVM_NR_SPSR)
#error "not the arm64 UAPI headers"
#endif

/* asm/kvm.h's KVM_VGIC_V3_*_SIZE use the kernel-internal SZ_64K */
#ifndef SZ_64K
#define SZ_64K 0x10000
#endif

#define MEMBER_SIZE(type, member) sizeof(((type *)0)->member)

#ifdef KVM_ARM_VM_SMCCC_CTRL
#define VCPUHP_HEADERS_HAVE_SMCCC_FILTER 1
#define VCPUHP_SMCCC_FILTER struct kvm_smccc_filter
#define VCPUHP_HYPERCALL_FLAGS_OFFSET offsetof(struct kvm_run, hypercall.flags)
#define VCPUHP_HYPERCALL_FLAGS_SIZE MEMBER_SIZE(struct kvm_run, hypercall.flags)
#else
#define VCPUHP_HEADERS_HAVE_SMCCC_FILTER 0
/* Linux 6.4 arch/arm64/include/uapi/asm/kvm.h, transcribed in shape */
struct vcpuhp_kvm_smccc_filter {
    __u32 base;
    __u32 nr_functions;
    __u8 action;
    __u8 pad[15];
};
#define VCPUHP_SMCCC_FILTER struct vcpuhp_kvm_smccc_filter
#define KVM_ARM_VM_SMCCC_CTRL 0             /* devices/vm.rst: group 6 */
#define KVM_ARM_VM_SMCCC_FILTER 0           /* devices/vm.rst: attribute 6.1 */
#define KVM_SMCCC_FILTER_HANDLE 0           /* enum kvm_smccc_filter_action */
#define KVM_SMCCC_FILTER_DENY 1
#define KVM_SMCCC_FILTER_FWD_TO_USER 2
#define KVM_HYPERCALL_EXIT_SMC (1U << 0)    /* api.rst: KVM_EXIT_HYPERCALL flags */
#define KVM_HYPERCALL_EXIT_16BIT (1U << 1)
/* Before 6.4 kvm_run.hypercall.flags was `__u32 longmode; __u32 pad;`: the same 8 bytes */
#define VCPUHP_HYPERCALL_FLAGS_OFFSET offsetof(struct kvm_run, hypercall.longmode)
#define VCPUHP_HYPERCALL_FLAGS_SIZE \
    (MEMBER_SIZE(struct kvm_run, hypercall.longmode) + MEMBER_SIZE(struct kvm_run, hypercall.pad))
#endif
"""


def _c_struct(name: str) -> str:
    return "VCPUHP_SMCCC_FILTER" if name == "kvm_smccc_filter" else f"struct {name}"


def _field_paths(ctype: Any, prefix: str = "") -> Iterator[tuple[str, tuple[str, ...], Any]]:
    """Every field of a cffi struct/union type, nested ones too: (C path, cffi path, type)."""
    for name, field in ctype.fields:
        path = f"{prefix}{name}"
        yield path, tuple(path.split(".")), field.type
        if field.type.kind in ("struct", "union"):
            yield from _field_paths(field.type, f"{path}.")


def layout_entries() -> list[tuple[str, str, int]]:
    """``(label, C expression, Python value)`` for every declared struct size and field."""
    entries = []
    for name in STRUCTS:
        c_struct = _c_struct(name)
        py_struct = f"struct {name}"
        if name not in PARTIAL_STRUCTS:
            entries.append((f"sizeof({py_struct})", f"sizeof({c_struct})", ffi.sizeof(py_struct)))
        for path, ffi_path, ftype in _field_paths(ffi.typeof(py_struct)):
            offset = ffi.offsetof(py_struct, *ffi_path)
            if name == "kvm_run" and path == "hypercall.flags":
                c_offset, c_size = "VCPUHP_HYPERCALL_FLAGS_OFFSET", "VCPUHP_HYPERCALL_FLAGS_SIZE"
            else:
                c_offset = f"offsetof({c_struct}, {path})"
                c_size = f"MEMBER_SIZE({c_struct}, {path})"
            entries.append((f"offsetof({py_struct}, {path})", c_offset, offset))
            if not (ftype.kind == "array" and ftype.length is None):  # flexible array: no size
                entries.append((f"sizeof({py_struct}.{path})", c_size, ffi.sizeof(ftype)))
    return entries


def constant_entries() -> list[tuple[str, str, int]]:
    """Every UAPI constant and ioctl number, compared with the header macro of the same name."""
    return [(name, name, value) for name, value in sorted(uapi.uapi_constants().items())]


def register_entries() -> list[tuple[str, str, int]]:
    """Every register id, against the header's macros."""
    core = "KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG({})"
    entries = [(f"core register {path}", core.format(path), reg_id)
               for path, reg_id in regs.core_register_ids().items()]
    entries += [
        ("MPIDR_EL1", "ARM64_SYS_REG(3, 0, 0, 0, 5)", regs.MPIDR_EL1),
        ("KVM_REG_ARM_TIMER_CTL", "KVM_REG_ARM_TIMER_CTL", regs.KVM_REG_ARM_TIMER_CTL),
        ("KVM_REG_ARM_TIMER_CNT", "KVM_REG_ARM_TIMER_CNT", regs.KVM_REG_ARM_TIMER_CNT),
        ("KVM_REG_ARM_TIMER_CVAL", "KVM_REG_ARM_TIMER_CVAL", regs.KVM_REG_ARM_TIMER_CVAL),
        ("highest sysreg", "ARM64_SYS_REG(3, 7, 15, 15, 7)", regs.sysreg(3, 7, 15, 15, 7)),
    ]
    return entries


IRQ_SAMPLES = [
    (uapi.KVM_ARM_IRQ_TYPE_SPI, 0, 41),
    (uapi.KVM_ARM_IRQ_TYPE_SPI, 0, 1019),
    (uapi.KVM_ARM_IRQ_TYPE_PPI, 5, 27),
    (uapi.KVM_ARM_IRQ_TYPE_PPI, 300, 30),
]


def irq_entries() -> list[tuple[str, str, int]]:
    """``KVM_IRQ_LINE`` words, against the header's field shifts (asm/kvm.h)."""
    expr = ("((({vcpu} >> 8) & KVM_ARM_IRQ_VCPU2_MASK) << KVM_ARM_IRQ_VCPU2_SHIFT) | "
            "({kind} << KVM_ARM_IRQ_TYPE_SHIFT) | "
            "(({vcpu} & KVM_ARM_IRQ_VCPU_MASK) << KVM_ARM_IRQ_VCPU_SHIFT) | "
            "({intid} << KVM_ARM_IRQ_NUM_SHIFT)")
    return [(f"irq word type {kind} vcpu {vcpu} intid {intid}",
             expr.format(kind=kind, vcpu=vcpu, intid=intid), irq_line_number(kind, vcpu, intid))
            for kind, vcpu, intid in IRQ_SAMPLES]


def header_facts() -> list[tuple[str, str, int]]:
    """Facts about the headers themselves (no Python counterpart: value -1)."""
    return [("LINUX_VERSION_CODE", "LINUX_VERSION_CODE", -1),
            ("headers have the SMCCC filter", "VCPUHP_HEADERS_HAVE_SMCCC_FILTER", -1)]


def all_entries() -> list[tuple[str, str, int]]:
    return (layout_entries() + constant_entries() + register_entries() + irq_entries()
            + header_facts())


def compile_values(entries: list[tuple[str, str, int]], workdir: Path) -> dict[str, int]:
    """Compile the C expressions for the arm64 target and read their values from the object."""
    lines = [PRELUDE, f'__attribute__((section("{SECTION}"), used))',
             "const unsigned long long vcpuhp_abi[] = {"]
    lines += [f"    (unsigned long long)({expr}), /* {label} */" for label, expr, _ in entries]
    lines.append("};")
    source = workdir / "abi.c"
    source.write_text("\n".join(lines) + "\n")
    obj, raw = workdir / "abi.o", workdir / "abi.bin"
    compiled = subprocess.run([CC, "-c", "-O0", "-o", str(obj), str(source)],
                              capture_output=True, text=True, check=False)
    assert compiled.returncode == 0, f"{CC} failed:\n{compiled.stderr}"
    subprocess.run([OBJCOPY, "-O", "binary", "-j", SECTION, str(obj), str(raw)], check=True)
    data = raw.read_bytes()
    assert len(data) == 8 * len(entries), (len(data), len(entries))
    values = struct.unpack(f"<{len(entries)}Q", data)
    return {label: value for (label, _, _), value in zip(entries, values, strict=True)}


@pytest.fixture(scope="module")
def header_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """Every entry's value as the arm64 compiler computes it from the real headers."""
    missing = [tool for tool in (CC, OBJCOPY) if shutil.which(tool) is None]
    if missing or not (SYSROOT_INCLUDE / "asm" / "kvm.h").exists():
        pytest.fail(
            f"the ABI test needs {', '.join(missing) or CC} and the arm64 UAPI headers: "
            "apt-get install gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu "
            "linux-libc-dev-arm64-cross (bash .ci/run installs them)"
        )
    return compile_values(all_entries(), tmp_path_factory.mktemp("kvm-abi"))


def mismatches(entries: list[tuple[str, str, int]], values: dict[str, int]) -> list[str]:
    return [f"{label}: cffi/python {mine:#x}, arm64 headers {values[label]:#x}"
            for label, _, mine in entries if values[label] != mine]


def test_every_struct_field_has_the_headers_offset_and_size(header_values: dict[str, int]) -> None:
    entries = layout_entries()
    # every declared struct is covered, and kvm_run's exit members are all there
    assert {label.split("(struct ")[1].split(",")[0].split(")")[0].split(".")[0]
            for label, _, _ in entries} == set(STRUCTS)
    assert any("kvm_run, system_event.flags" in label for label, _, _ in entries)
    assert mismatches(entries, header_values) == []


def test_every_ioctl_number_and_constant_equals_the_headers(header_values: dict[str, int]) -> None:
    entries = constant_entries()
    assert "KVM_RUN" in {name for name, _, _ in entries}
    assert mismatches(entries, header_values) == []


def test_register_ids_equal_the_headers_macros(header_values: dict[str, int]) -> None:
    assert mismatches(register_entries(), header_values) == []


def test_irq_line_words_follow_the_headers_layout(header_values: dict[str, int]) -> None:
    assert mismatches(irq_entries(), header_values) == []


def test_linux_6_4_definitions_are_checked_against_their_documented_shape(
    header_values: dict[str, int],
) -> None:
    have_filter = header_values["headers have the SMCCC filter"]
    version = header_values["LINUX_VERSION_CODE"]
    # the headers lack the SMCCC filter exactly when they predate Linux 6.4, so
    # the transcribed declarations stood in for them then and only then
    assert have_filter == (1 if version >= 0x06_04_00 else 0), hex(version)
    assert ffi.sizeof("struct kvm_smccc_filter") == header_values["sizeof(struct kvm_smccc_filter)"]
    for name in uapi.LINUX_6_4_NAMES:
        assert header_values[name] == uapi.uapi_constants()[name], name


def test_the_ioctl_encoder_refuses_a_size_that_does_not_fit() -> None:
    with pytest.raises(ValueError, match="does not fit in 14 bits"):
        uapi._IOC(uapi._IOC_WRITE, uapi.KVMIO, 0x01, 1 << 14)
