"""With ``exec=serial``, atomic read-modify-writes of two CPUs on one counter lose nothing.

Unicorn translates ``LDXR``/``STXR`` and the LSE atomics as for a single CPU (a
plain load and a plain store), so two engines executing at once lose updates;
``exec=serial`` executes one engine at a time (``vcpuhp_tcg_unicorn.execution``).
The default, ``exec=parallel``, runs them all at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from unicorn_testlib import read_u64, require_unicorn, wait_until

require_unicorn()

from coherence_guests import COUNTER, FINISHED, shared_counter_guest  # noqa: E402
from unicorn_guests import RESULTS, write_image  # noqa: E402

from vcpuhp import VirtMachine  # noqa: E402
from vcpuhp_tcg_unicorn.backend import UnicornBackend  # noqa: E402

MakeMachine = Callable[..., VirtMachine]
ADDS = 300_000
"""Per CPU: run in parallel, two engines lose a large part of them."""


@pytest.mark.parametrize("lse", [True, False], ids=["ldadd", "ldxr-stxr"])
def test_two_cpus_adding_to_one_counter_lose_no_update(
    unicorn_machine: MakeMachine, tmp_path: Path, lse: bool
) -> None:
    machine = unicorn_machine("cpus=2,maxcpus=2", cpu="max", backend_options={"exec": "serial"},
                              kernel=write_image(tmp_path, shared_counter_guest(ADDS, lse=lse)))
    wait_until(lambda: all(read_u64(machine, RESULTS + done) for done in FINISHED),
               what="both CPUs' adds")
    assert read_u64(machine, RESULTS + COUNTER) == 2 * ADDS
    assert machine.backend_stats()["total_faults"] == 0


def test_engines_execute_at_once_unless_told_to_take_turns() -> None:
    assert not UnicornBackend({}).token.serial
    assert not UnicornBackend({"exec": "parallel"}).token.serial
    assert UnicornBackend({"exec": "serial"}).token.serial
