"""Inside an arm64 KVM host (the emulated one, or a real one): what the kvm tests rely on.

KVM answers the basic ioctls, every module the project's tests import is
there, vcpuhp's backends are found through their entry points, and the files
for L2 guests (a Debian arm64 kernel and busybox) are where the environment says.
"""

from __future__ import annotations

import fcntl
import importlib
import importlib.metadata
import importlib.util
import os
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# linux/kvm.h: _IO(KVMIO = 0xAE, nr) has no size and no direction bits.
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_CHECK_EXTENSION = 0xAE03
KVM_CREATE_VCPU = 0xAE41
KVM_API_VERSION = 12
KVM_CAP_ARM_VM_IPA_SIZE = 165
EM_AARCH64 = 183


@pytest.fixture
def kvm() -> Iterator[int]:
    fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    yield fd
    os.close(fd)


def test_dev_kvm_is_a_character_device() -> None:
    assert stat.S_ISCHR(os.stat("/dev/kvm").st_mode)


def test_kvm_api_version_is_12(kvm: int) -> None:
    assert fcntl.ioctl(kvm, KVM_GET_API_VERSION, 0) == KVM_API_VERSION


def test_kvm_reports_an_ipa_size(kvm: int) -> None:
    assert fcntl.ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_ARM_VM_IPA_SIZE) >= 40


def test_kvm_creates_a_vm_and_a_vcpu(kvm: int) -> None:
    vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
    try:
        vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
        assert vcpu > 2
        os.close(vcpu)
    finally:
        os.close(vm)


@pytest.mark.parametrize("module", ["cffi", "_cffi_backend", "pytest", "pluggy", "stevedore",
                                    "hypothesis", "libfdt", "qemu.qmp", "fdt", "vcpuhp"])
def test_the_test_suites_imports_are_available(module: str) -> None:
    importlib.import_module(module)


def test_vcpuhp_finds_the_null_backend_through_its_entry_point() -> None:
    names = {ep.name for ep in importlib.metadata.entry_points(group="vcpuhp.backends")}
    assert "null" in names
    done = subprocess.run([sys.executable, "-m", "vcpuhp", "backends"], capture_output=True,
                          text=True, timeout=300, check=True)
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert rows["null"].split()[1] == "viable"


def test_the_l2_kernel_busybox_and_evdev_are_where_the_environment_says() -> None:
    image = Path(os.environ["VCPUHP_TEST_KERNEL_IMAGE"]).read_bytes()
    assert image[0x38:0x3C] == b"ARM\x64"
    vmlinuz = Path(os.environ["VCPUHP_TEST_KERNEL"])
    assert vmlinuz.stat().st_size > 1 << 20
    busybox = Path(os.environ["VCPUHP_TEST_BUSYBOX"]).read_bytes()
    assert busybox[:4] == b"\x7fELF"
    assert struct.unpack_from("<H", busybox, 18)[0] == EM_AARCH64
    evdev = Path(os.environ["VCPUHP_TEST_EVDEV"]).read_bytes()
    assert evdev[:4] == b"\x7fELF", "uncompressed, for busybox insmod"
    assert struct.unpack_from("<HH", evdev, 16) == (1, EM_AARCH64)  # ET_REL: a module
    assert b"name=evdev\0" in evdev


def test_the_emulated_hosts_python_starts_from_precompiled_bytecode() -> None:
    if os.environ.get("VCPUHP_ARM64HOST") != "1":
        pytest.skip("only the emulated host's image carries precompiled bytecode")

    assert sys.pycache_prefix == "/var/cache/arm64host/pyc"
    spec = importlib.util.find_spec("pytest")
    assert spec is not None and spec.origin is not None
    assert Path(importlib.util.cache_from_source(spec.origin)).is_file()
