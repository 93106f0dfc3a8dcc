"""The backend's contract surface: discovery, options, capabilities, resource accounting."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from unicorn_testlib import require_unicorn, wait_until

require_unicorn()

from unicorn_guests import psci_calls, write_image  # noqa: E402

from vcpuhp import MachineConfig, VirtMachine  # noqa: E402
from vcpuhp.errors import BackendError, ConfigError  # noqa: E402
from vcpuhp.plugins import PluginManager  # noqa: E402
from vcpuhp.vcpu import VcpuState  # noqa: E402
from vcpuhp_tcg_unicorn import UnicornBackend, UnicornVcpu  # noqa: E402
from vcpuhp_tcg_unicorn.backend import SERVICE_THREADS  # noqa: E402

MakeMachine = Callable[..., VirtMachine]


def idle_image(tmp_path: Path) -> Path:
    """A guest that only counts on the boot CPU (no hotplug handling)."""
    return write_image(tmp_path, psci_calls([]))


def test_backend_is_discovered_viable_and_declares_its_capabilities() -> None:
    registry = PluginManager().backends
    assert registry.get("tcg-unicorn") is UnicornBackend
    row = next(r for r in registry.describe() if r["name"] == "tcg-unicorn")
    assert row["viable"], row["reason"]
    caps = UnicornBackend.capabilities
    assert caps.executes_guest_code and not caps.parks_vcpus
    assert UnicornBackend.distribution == "vcpuhp-tcg-unicorn"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tb-size": "0"}, r"tb-size=0 is out of range 1-4095"),
        ({"tb-size": "huge"}, r"tb-size='huge' is not a whole number of MiB"),
        ({"tb-size": "4096"}, r"out of range"),
        ({"slice-insns": "0"}, r"slice-insns=0 is out of range 1-1073741824 \(instructions\)"),
        ({"bogus": "1"}, r"unknown option\(s\) bogus; valid: tb-size, stops, slice-insns, exec"),
        ({"stops": "never"}, r"stops='never' is not a stop mode; valid: block, slices"),
        ({"exec": "both"}, r"exec='both' is not an execution mode; valid: parallel, serial"),
    ],
)
def test_bad_options_are_refused_with_what_is_valid(options: dict[str, str],
                                                    message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        UnicornBackend(options)


def test_host_cpu_model_is_refused_under_tcg(tmp_path: Path) -> None:
    machine = VirtMachine(MachineConfig.build("1", accel="tcg-unicorn", cpu="host",
                                              kernel=idle_image(tmp_path)))
    with pytest.raises(ConfigError, match="needs KVM; under TCG use one of cortex-a57"):
        machine.realize()
    machine.shutdown()


def test_tb_size_option_reaches_every_engine(unicorn_machine: MakeMachine,
                                             tmp_path: Path) -> None:
    machine = unicorn_machine("cpus=2,maxcpus=3", kernel=idle_image(tmp_path),
                              backend_options={"tb-size": "8"})
    backend = machine.backend
    assert isinstance(backend, UnicornBackend)
    assert backend.stats()["tb_size_mib"] == 8
    for vcpu in backend.vcpus.values():
        assert vcpu.engine.uc.ctl_get_tcg_buffer_size() == 8 << 20
        assert vcpu.context is not None and vcpu.context.tb_size == 8 << 20


def test_one_engine_thread_and_context_per_enabled_cpu(unicorn_machine: MakeMachine,
                                                       tmp_path: Path) -> None:
    machine = unicorn_machine("cpus=3,maxcpus=6", kernel=idle_image(tmp_path))
    stats = machine.backend_stats()
    assert (stats["engines"], stats["threads"], stats["parked"]) == (3, 3, 0)
    assert (stats["contexts_registered"], stats["contexts_free"],
            stats["contexts_capacity"]) == (3, 3, 6)
    threads = {t.name for t in threading.enumerate()}
    assert {"vcpuhp-cpu0", "vcpuhp-cpu1", "vcpuhp-cpu2"} <= threads
    rows = machine.query_cpus_fast()
    backend = machine.backend
    assert isinstance(backend, UnicornBackend)
    assert [r["thread-id"] for r in rows] == [backend.vcpus[i].thread_id for i in range(3)]
    assert len({r["thread-id"] for r in rows}) == 3


def test_realize_refused_when_no_translation_context_is_free(
    unicorn_machine: MakeMachine, tmp_path: Path
) -> None:
    machine = unicorn_machine("cpus=1,maxcpus=3", kernel=idle_image(tmp_path))
    backend = machine.backend
    assert isinstance(backend, UnicornBackend) and backend.pool is not None
    wait_until(lambda: machine.vcpus[0].online, what="boot CPU online")
    squatters = [backend.pool.register(cpu, engine_id=0, tb_size=0) for cpu in (101, 102)]
    before = machine.snapshot_bytes()
    threads = threading.active_count()
    with pytest.raises(BackendError, match=r"no free translation context for CPU 2: all 3"):
        machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
    assert machine.snapshot_bytes() == before
    assert threading.active_count() == threads
    stats = machine.backend_stats()
    assert (stats["engines"], stats["threads"], stats["contexts_registered"]) == (1, 1, 3)
    for context in squatters:
        backend.pool.unregister(context)
    vcpu = machine.device_add("max-arm-cpu", "c2", **{"core-id": 2})
    assert vcpu.state is VcpuState.POWERED_OFF
    assert machine.backend_stats()["contexts_registered"] == 2
    machine.check_invariants()


def test_foreign_vcpu_handles_are_refused(unicorn_machine: MakeMachine, tmp_path: Path) -> None:
    machine = unicorn_machine("cpus=1,maxcpus=2", kernel=idle_image(tmp_path))
    backend = machine.backend
    assert isinstance(backend, UnicornBackend)
    other = UnicornBackend()
    with pytest.raises(BackendError, match="not a vCPU of this backend"):
        other.power_off(backend.vcpus[0])
    own = backend.vcpus[0]
    assert isinstance(own, UnicornVcpu)
    with pytest.raises(BackendError, match="still has a thread"):
        backend.destroy_vcpu(own)
    with pytest.raises(BackendError, match="already has a host thread"):
        backend.realize_vcpu(own)


def test_shutdown_joins_every_thread_and_closes_every_engine(tmp_path: Path) -> None:
    baseline = threading.active_count()
    machine = VirtMachine(MachineConfig.build("cpus=4,maxcpus=6", accel="tcg-unicorn",
                                              kernel=idle_image(tmp_path)))
    machine.realize()
    wait_until(lambda: machine.vcpus[0].online, what="boot CPU online")
    assert threading.active_count() == baseline + 4 + SERVICE_THREADS + 1  # the event thread
    assert machine.backend.stats()["spare_engines"] == 1  # ready for a plug (maxcpus > cpus)
    machine.shutdown()
    stats = machine.backend.stats()
    assert (stats["engines"], stats["spare_engines"], stats["threads"],
            stats["contexts_registered"]) == (0, 0, 0, 0)
    assert stats["total_engines_created"] == stats["total_engines_closed"] == 4 + 1
    assert threading.active_count() == baseline
    machine.shutdown()  # idempotent


def test_exiting_without_shutdown_is_orderly(tmp_path: Path) -> None:
    script = tmp_path / "forgetful.py"
    script.write_text(
        "import time\n"
        "from vcpuhp import MachineConfig, VirtMachine\n"
        "machine = VirtMachine(MachineConfig.build('cpus=2,maxcpus=4', accel='tcg-unicorn',\n"
        "                                          guest_cmdline='maxcpus=2'))\n"
        "machine.realize()\n"
        "time.sleep(0.2)\n"
        "print('leaving without shutdown')\n"
    )
    done = subprocess.run([sys.executable, "-X", "faulthandler", str(script)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "leaving without shutdown" in done.stdout
    assert "Fatal" not in done.stderr and "Traceback" not in done.stderr, done.stderr
