"""1,000 plug/unplug cycles with the bundled guest running: nothing accumulates.

This is the RFC v1 bug's regression test: a translation-context counter that
plug incremented and unplug never decremented. About 10 s here (~100 cycles/s).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from unicorn_testlib import SETTLE, console_has, require_unicorn, wait_until

require_unicorn()

from vcpuhp import events as ev  # noqa: E402
from vcpuhp.machine import VirtMachine  # noqa: E402

MakeMachine = Callable[..., VirtMachine]
CYCLES = int(os.environ.get("VCPUHP_UNICORN_CYCLES", "1000"))
"""Override with VCPUHP_UNICORN_CYCLES; the point is that it exceeds maxcpus many times."""
LIVE_KEYS = ("engines", "spare_engines", "threads", "contexts_registered", "contexts_free",
             "contexts_capacity", "parked")


def test_plug_unplug_cycles_return_every_count_to_its_start(
    unicorn_machine: MakeMachine,
) -> None:
    machine = unicorn_machine("cpus=2,maxcpus=4", guest_cmdline="maxcpus=2")
    wait_until(console_has(machine, "possible 0-3 present 0-3 enabled 0-1 online 0-1"),
               what="guest boot")
    start = machine.backend_stats()
    threads = threading.active_count()
    for n in range(CYCLES):
        index = 2 + n % 2
        device = f"cpu{n}"
        with machine.events.recorder() as recorder:
            machine.device_add(machine.config.cpu_type, device,
                               **machine.topology.slots[index].props())
            recorder.wait_for(ev.CPU_POWERED_ON, lambda e, i=index: e.data["cpu_index"] == i,
                              timeout=SETTLE)
            machine.device_del(device)
            recorder.wait_for(ev.DEVICE_DELETED, lambda e, d=device: e.data["device"] == d,
                              timeout=SETTLE)
    end = machine.backend_stats()
    assert {k: end[k] for k in LIVE_KEYS} == {k: start[k] for k in LIVE_KEYS}
    assert (end["engines"], end["threads"], end["contexts_registered"]) == (2, 2, 2)
    assert end["total_registrations"] - start["total_registrations"] == CYCLES
    assert end["total_unregistrations"] - start["total_unregistrations"] == CYCLES
    assert start["spare_engines"] == end["spare_engines"] == 1, "one engine waits for a plug"
    assert end["total_engines_created"] - end["total_engines_closed"] == 2 + 1
    assert end["total_engines_created"] == start["total_engines_created"], "plugs reuse it"
    assert end["total_engines_reused"] - start["total_engines_reused"] == CYCLES
    assert end["total_threads_started"] - end["total_threads_joined"] == 2
    assert end["peak"] == 3 < end["contexts_capacity"]
    assert end["total_faults"] == 0
    assert threading.active_count() == threads
    assert machine.cpu_masks().online == {0, 1}
    machine.check_invariants()
