"""ThreadedVcpu, the building block of thread-per-vCPU backends, on its own.

A scripted guest stands in for the accelerator: a run "executes" until the
vCPU asks it to stop, or until the test hands it an exit to serve (a machine
call, an error). A fake machine has the real machine lock and records the
calls it gets. Every wait is on a condition, bounded by :data:`BOUND` so that
a broken block fails instead of hanging; nothing depends on how long anything
takes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vcpuhp.errors import BackendError, VcpuhpError
from vcpuhp.machine_lock import MachineLock
from vcpuhp.topology import SmpConfig, Topology
from vcpuhp.vcpu_thread import Abandoned, ThreadedVcpu, pause_vcpus, resume_vcpus

BOUND = 30.0
"""Seconds a wait may take before the test fails (a hang guard, not a timing check)."""
ENTRY = 0x4020_0000

Exit = Callable[[int], None]


class FakeMachine:
    """The part of VirtMachine a ThreadedVcpu calls: the lock, vcpu_started, vcpu_fault."""

    def __init__(self) -> None:
        self.lock = MachineLock()
        self.calls: list[tuple[Any, ...]] = []
        self._changed = threading.Condition()

    def record(self, *call: Any) -> None:
        with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    def vcpu_started(self, index: int) -> None:
        with self.lock:
            self.record("started", index)

    def vcpu_fault(self, index: int, error: BaseException) -> None:
        with self.lock:
            self.record("fault", index, error)

    def wait_for_calls(self, count: int) -> list[tuple[Any, ...]]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.calls) >= count, BOUND), self.calls
            return list(self.calls)


class ScriptedVcpu(ThreadedVcpu):
    """Each run executes until stopped or until the test hands it an exit to serve; a *hook*
    the test hands it runs inside the run, as an accelerator's hooks do."""

    label = "test"
    thread_name_prefix = "test-cpu"
    join_timeout = BOUND

    def __init__(self, index: int, machine: FakeMachine) -> None:
        slot = Topology(SmpConfig.parse("cpus=4,maxcpus=4")).slots[index]
        super().__init__(slot, machine)  # type: ignore[arg-type]
        self.fake = machine
        self.runs = 0
        self.refused = 0
        self.stops = 0
        self.obeys_stops = True
        self.exited = 0
        self.before_enter: Callable[[], None] | None = None
        # Guarded by _cond:
        self._stop_wanted = False
        self._exits: list[Exit] = []
        self._hooks: list[Exit] = []

    def exit_with(self, action: Exit) -> None:
        """Make the running guest return and the thread do ``action(epoch)``."""
        with self._cond:
            self._exits.append(action)
            self._cond.notify_all()

    def hook_with(self, action: Exit) -> None:
        """Make the running guest do ``action(epoch)`` without returning (still executing)."""
        with self._cond:
            self._hooks.append(action)
            self._cond.notify_all()

    def _reset_guest(self, entry_point: int, args: tuple[int, ...]) -> None:
        self.fake.record("reset", self.index, entry_point, args)

    def _stop_guest(self) -> None:
        self.stops += 1
        self._stop_wanted = self.obeys_stops

    def _thread_exiting(self) -> None:
        self.exited += 1

    def _run_guest(self, epoch: int) -> None:
        before, self.before_enter = self.before_enter, None
        if before is not None:
            before()
        with self._cond:
            if not self._enter_guest(epoch):
                self.refused += 1
                self._cond.notify_all()
                return
            self.runs += 1
            self._stop_wanted = False
            self._cond.notify_all()
        action: Exit | None = None
        try:
            while True:
                with self._cond:
                    while not self._stop_wanted and not self._exits and not self._hooks:
                        self._cond.wait()
                    if not self._hooks:
                        action = self._exits.pop(0) if self._exits else None
                        break
                    hook = self._hooks.pop(0)
                hook(epoch)
        finally:
            self._leave_guest(epoch)
        if action is not None:
            action(epoch)

    # what tests read and wait for

    def until(self, predicate: Callable[[], bool], what: str) -> None:
        with self._cond:
            assert self._cond.wait_for(predicate, BOUND), what

    def call_machine(self, *call: Any) -> Exit:
        """An exit that records ``call`` in the machine (like an MMIO access)."""
        return lambda epoch: self._call_machine(epoch, self.fake.record, *call)


@pytest.fixture
def machine() -> FakeMachine:
    return FakeMachine()


@pytest.fixture
def make_vcpu(machine: FakeMachine) -> Iterator[Callable[..., ScriptedVcpu]]:
    made: list[ScriptedVcpu] = []

    def make(index: int = 1, *, running: bool = True) -> ScriptedVcpu:
        vcpu = ScriptedVcpu(index, machine)
        made.append(vcpu)
        vcpu.start_thread(paused=False)
        if running:
            vcpu.power_on(ENTRY, (index, 7))
            vcpu.until(lambda: vcpu.runs == 1, "the first run")
        return vcpu

    yield make
    for vcpu in made:
        vcpu.obeys_stops = True
        vcpu.stop_thread()
        assert not vcpu.thread_alive


@pytest.fixture
def vcpu(make_vcpu: Callable[..., ScriptedVcpu]) -> ScriptedVcpu:
    """CPU 1, running its first run."""
    return make_vcpu()


@contextlib.contextmanager
def waiting_for_the_lock(vcpu: ScriptedVcpu, *, in_a_hook: bool) -> Iterator[None]:
    """Hold the machine lock while ``vcpu`` makes an MMIO-like call (from a hook: in the middle
    of a run; else after the run); yield once its thread waits for the lock."""
    with vcpu.fake.lock:
        (vcpu.hook_with if in_a_hook else vcpu.exit_with)(vcpu.call_machine("mmio"))
        vcpu.until(lambda: vcpu._blocked_on_machine, "the thread waits for the lock")
        yield


def test_the_thread_resets_reports_the_start_then_runs(machine: FakeMachine,
                                                       make_vcpu: Callable[..., ScriptedVcpu]
                                                       ) -> None:
    vcpu = make_vcpu(running=False)
    assert vcpu.thread_alive and vcpu.thread is not None
    assert vcpu.thread.name == "test-cpu1" and vcpu.thread_id is not None
    assert (machine.calls, vcpu.runs) == ([], 0), "powered off until power_on"
    vcpu.power_on(ENTRY, [1, 7])
    vcpu.until(lambda: vcpu.runs == 1, "the first run")
    assert machine.calls == [("reset", 1, ENTRY, (1, 7)), ("started", 1)]


def test_power_off_stops_the_guest_and_the_next_power_on_resets_it(
    machine: FakeMachine, vcpu: ScriptedVcpu
) -> None:
    vcpu.power_off()
    assert vcpu.stops == 1
    vcpu.until(lambda: not vcpu._executing, "the run ended")
    with vcpu._cond:
        assert not vcpu._may_run() and vcpu.runs == 1
    vcpu.power_on(ENTRY + 4, [2])
    vcpu.until(lambda: vcpu.runs == 2, "a run after the second power_on")
    assert machine.calls[2:] == [("reset", 1, ENTRY + 4, (2,)), ("started", 1)]


def test_stop_thread_joins_and_the_vcpu_can_be_realized_again(vcpu: ScriptedVcpu) -> None:
    vcpu.stop_thread()
    assert (vcpu.thread, vcpu.thread_id, vcpu.exited) == (None, None, 1)
    with pytest.raises(BackendError, match="test: CPU 1 is not realized"):
        vcpu.power_on(ENTRY, [])
    vcpu.start_thread(paused=False)
    vcpu.power_on(ENTRY, [])
    vcpu.until(lambda: vcpu.runs == 2, "a run on the new thread")


def test_an_exit_is_served_with_the_machine_lock_and_the_guest_runs_on(
    machine: FakeMachine, vcpu: ScriptedVcpu
) -> None:
    others_got_it: list[bool] = []

    def serve() -> None:
        other = threading.Thread(
            target=lambda: others_got_it.append(machine.lock.acquire(blocking=False)))
        other.start()
        other.join()

    vcpu.exit_with(lambda epoch: vcpu._call_machine(epoch, serve))
    vcpu.until(lambda: vcpu.runs == 2, "the run after the exit")
    assert others_got_it == [False], "the call ran with the machine lock held"


def test_a_call_waiting_for_the_lock_gives_up_on_power_off_and_the_holder_can_join(
    machine: FakeMachine, vcpu: ScriptedVcpu
) -> None:
    """Eject's situation: the thread that holds the machine lock unrealizes the vCPU."""
    with waiting_for_the_lock(vcpu, in_a_hook=False):
        assert vcpu.wait_until_stopped(BOUND), "waiting for the lock counts as stopped"
        vcpu.power_off()  # returns at once although the thread waits for our lock
        vcpu.until(lambda: not vcpu._blocked_on_machine, "the call was given up")
        vcpu.stop_thread()
        assert not vcpu.thread_alive
    assert ("mmio",) not in machine.calls and vcpu.faults == 0


def test_a_run_waiting_for_the_lock_in_a_hook_counts_as_stopped_and_gives_up(
    machine: FakeMachine, vcpu: ScriptedVcpu
) -> None:
    """Pause's situation under tcg-unicorn: an MMIO hook waits for the lock mid-run."""
    with waiting_for_the_lock(vcpu, in_a_hook=True):
        assert vcpu._executing
        assert vcpu.wait_until_stopped(BOUND), "a vCPU waiting for the lock counts as stopped"
        vcpu.power_off()
        vcpu.until(lambda: not vcpu._executing, "the run ended")
    assert ("mmio",) not in machine.calls and vcpu.faults == 0


def test_power_on_ends_a_wait_for_the_lock_of_the_previous_start(
    machine: FakeMachine, vcpu: ScriptedVcpu
) -> None:
    """A CPU reset (another CPU_ON after CPU_OFF, SYSTEM_RESET) voids a pending call."""
    with waiting_for_the_lock(vcpu, in_a_hook=True):
        vcpu.power_on(ENTRY + 8, [])
        machine.wait_for_calls(3)
        assert machine.calls[-1] == ("reset", 1, ENTRY + 8, ()), "the call was given up"
    assert machine.wait_for_calls(4)[-1] == ("started", 1)
    vcpu.until(lambda: vcpu.runs == 2, "the new start runs")
    assert ("mmio",) not in machine.calls


def test_stop_thread_alone_ends_a_wait_for_the_lock(
    machine: FakeMachine, vcpu: ScriptedVcpu
) -> None:
    with waiting_for_the_lock(vcpu, in_a_hook=False):
        vcpu.stop_thread()
    assert ("mmio",) not in machine.calls and vcpu.exited == 1


def test_a_call_waiting_for_the_lock_completes_once_it_is_released(
    machine: FakeMachine, vcpu: ScriptedVcpu
) -> None:
    with waiting_for_the_lock(vcpu, in_a_hook=False):
        pass  # released here
    assert machine.wait_for_calls(3)[-1] == ("mmio",)
    vcpu.until(lambda: vcpu.runs == 2, "the run after the call")


def test_pause_stops_the_guest_and_resume_runs_it_again(vcpu: ScriptedVcpu) -> None:
    vcpu.set_paused(True)
    assert vcpu.stops == 1
    assert vcpu.wait_until_stopped(BOUND)
    with vcpu._cond:
        assert not vcpu._may_run() and vcpu.runs == 1
    vcpu.set_paused(False)
    vcpu.until(lambda: vcpu.runs == 2, "a run after resume")


@pytest.mark.parametrize("request_name", ["pause", "power_off", "reset"])
def test_a_request_landing_after_the_work_was_taken_keeps_the_guest_out(
    machine: FakeMachine, vcpu: ScriptedVcpu, request_name: str
) -> None:
    lands = {"pause": lambda: vcpu.set_paused(True), "power_off": vcpu.power_off,
             "reset": lambda: (vcpu.power_off(), vcpu.power_on(ENTRY + 8, []))}
    vcpu.before_enter = lands[request_name]  # on the thread, between taking work and entering
    vcpu.exit_with(lambda epoch: None)
    vcpu.until(lambda: vcpu.refused == 1, "the guest was not entered")
    if request_name == "pause":
        assert vcpu.runs == 1 and not vcpu._executing
        vcpu.set_paused(False)
    elif request_name == "power_off":
        assert vcpu.runs == 1 and not vcpu._executing
        vcpu.power_on(ENTRY + 8, [])
    vcpu.until(lambda: vcpu.runs == 2, "a run once the request is done with")
    if request_name != "pause":
        assert machine.calls[-2:] == [("reset", 1, ENTRY + 8, ()), ("started", 1)], \
            "the new start is served before the guest runs again"


def test_a_call_completed_while_paused_holds_the_thread_until_resume(
    machine: FakeMachine, vcpu: ScriptedVcpu
) -> None:
    with waiting_for_the_lock(vcpu, in_a_hook=True):
        vcpu.set_paused(True)
        assert vcpu.wait_until_stopped(BOUND)
    vcpu.until(lambda: vcpu._held, "held after the call")
    assert machine.calls[-1] == ("mmio",)
    assert vcpu._executing, "held inside the run"
    assert vcpu.wait_until_stopped(BOUND), "a held vCPU counts as stopped"
    assert vcpu.runs == 1
    vcpu.set_paused(False)
    vcpu.until(lambda: vcpu.runs == 2, "a run after resume")
    assert not vcpu._held


def test_power_off_releases_a_held_thread_without_resume(
    machine: FakeMachine, vcpu: ScriptedVcpu
) -> None:
    with waiting_for_the_lock(vcpu, in_a_hook=False):
        vcpu.set_paused(True)
    vcpu.until(lambda: vcpu._held, "held after the call")
    vcpu.power_off()
    vcpu.until(lambda: not vcpu._held, "released by power_off")
    with vcpu._cond:
        assert not vcpu._may_run() and vcpu.runs == 1


def test_an_error_while_serving_stops_the_vcpu_with_a_fault(
    machine: FakeMachine, vcpu: ScriptedVcpu
) -> None:
    boom = RuntimeError("boom")

    def fail(epoch: int) -> None:
        raise boom

    vcpu.exit_with(fail)
    assert machine.wait_for_calls(3)[-1] == ("fault", 1, boom)
    assert vcpu.faults == 1
    with vcpu._cond:
        assert not vcpu._powered, "a faulted vCPU is powered off"
    vcpu.power_on(ENTRY, [])  # the thread survived the fault
    vcpu.until(lambda: vcpu.runs == 2, "a run after the next power_on")


def test_a_fault_of_an_earlier_epoch_is_dropped(machine: FakeMachine, vcpu: ScriptedVcpu) -> None:
    with vcpu._cond:
        stale = vcpu._epoch - 1
    vcpu._fault(stale, RuntimeError("moot"))
    assert vcpu.faults == 0 and [c for c in machine.calls if c[0] == "fault"] == []


def test_abandoned_passes_handlers_of_machine_errors() -> None:
    assert not issubclass(Abandoned, VcpuhpError)


def test_a_thread_that_cannot_start_leaves_no_thread(machine: FakeMachine) -> None:
    class NoContext(ScriptedVcpu):
        def _thread_started(self) -> None:
            raise BackendError("test: no translation context left")

    vcpu = NoContext(1, machine)
    with pytest.raises(BackendError, match="no translation context left"):
        vcpu.start_thread(paused=False)
    assert vcpu.thread is None and vcpu.exited == 0


def test_wrong_life_cycle_calls_are_refused(machine: FakeMachine,
                                             make_vcpu: Callable[..., ScriptedVcpu]) -> None:
    idle = ScriptedVcpu(2, machine)
    with pytest.raises(BackendError, match="test: CPU 2 is not realized"):
        idle.power_on(ENTRY, [])
    idle.stop_thread()  # nothing to join
    vcpu = make_vcpu()
    with pytest.raises(BackendError, match="test: CPU 1 already has a host thread"):
        vcpu.start_thread(paused=False)
    vcpu.exit_with(lambda epoch: vcpu.stop_thread())  # the vCPU's own thread
    fault = machine.wait_for_calls(3)[-1]
    assert fault[:2] == ("fault", 1) and "cannot join its own thread" in str(fault[2])


def test_pause_vcpus_stops_every_vcpu_and_resume_vcpus_runs_them(
    make_vcpu: Callable[..., ScriptedVcpu]
) -> None:
    vcpus = [make_vcpu(1), make_vcpu(2)]
    pause_vcpus(vcpus, BOUND)
    assert all(not v._executing for v in vcpus)
    resume_vcpus(vcpus)
    for vcpu in vcpus:
        vcpu.until(lambda v=vcpu: v.runs == 2, f"CPU {vcpu.index} runs after resume")


def test_pause_vcpus_names_a_vcpu_that_keeps_executing(
    make_vcpu: Callable[..., ScriptedVcpu]
) -> None:
    stubborn = make_vcpu(3)
    stubborn.obeys_stops = False
    with pytest.raises(BackendError, match="test: CPU 3 did not stop executing guest code"):
        pause_vcpus([stubborn], 0.01)
    assert stubborn._executing
