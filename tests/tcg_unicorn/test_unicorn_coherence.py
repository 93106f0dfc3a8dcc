"""What one CPU invalidates is invalidated for the other: code it rewrote (``IC IVAU``) and
a mapping it changed (``TLBI VAE1IS``), each cached by the other CPU's engine first.

Without the backend's broadcast (``vcpuhp_tcg_unicorn.coherence``) CPU 1 keeps
running its own translation of the old code and reading through its own TLB's
old entry: each engine is a QEMU of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from unicorn_testlib import read_u64, require_unicorn, wait_until

require_unicorn()

import a64asm as a  # noqa: E402
from coherence_guests import (  # noqa: E402
    NEW_RESULT,
    NEW_VALUE,
    OLD_RESULT,
    OLD_VALUE,
    SEEN_AFTER,
    SEEN_BEFORE,
    code_patch_guest,
    remap_guest,
)
from unicorn_guests import DONE, DONE_MAGIC, RESULTS, write_image  # noqa: E402

from vcpuhp.machine import VirtMachine  # noqa: E402

MakeMachine = Callable[..., VirtMachine]


@pytest.mark.parametrize(("build", "before", "after"), [
    (code_patch_guest, OLD_RESULT, NEW_RESULT),
    (remap_guest, OLD_VALUE, NEW_VALUE),
], ids=["ic-ivau", "tlbi-vae1is"])
def test_the_other_cpu_sees_the_change_after_the_maintenance(
    unicorn_machine: MakeMachine, tmp_path: Path, build: Callable[[], a.Program], before: int,
    after: int
) -> None:
    machine = unicorn_machine("cpus=2,maxcpus=2", kernel=write_image(tmp_path, build()))
    wait_until(lambda: read_u64(machine, RESULTS + DONE) == DONE_MAGIC, what="CPU 1's last use")
    seen = (read_u64(machine, RESULTS + SEEN_BEFORE), read_u64(machine, RESULTS + SEEN_AFTER))
    assert seen == (before, after)
    stats = machine.backend_stats()
    # code: dc cvau (nothing to do), ic ivau (everyone); mapping: CPU 1's tlbi vmalle1 (its
    # own TLB) as it turns its MMU on, tlbi vae1is (everyone)
    assert (stats["total_maintenance"], stats["total_maintenance_broadcasts"]) == (2, 1)
    assert stats["total_faults"] == 0
