"""Random plug / unplug / online / offline / eject / bad-request sequences against a model.

The model is the guest's view: which CPUs are enabled, online, and asked to
go. After every step: present == possible, online ⊆ enabled, parked ==
possible - realized, the machine's masks equal the model's, and a refused
request left the machine's snapshot byte-for-byte as it was.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from vcpuhp import DeviceError, GuestError, MachineConfig, VcpuhpError, VirtMachine
from vcpuhp import events as ev
from vcpuhp.psci import PsciReturn
from vcpuhp_null import GuestDriver

POSSIBLE = 6
COLD = 3
HP = 0x090C0000
cpus = st.integers(min_value=0, max_value=POSSIBLE - 1)


class HotplugModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.machine = VirtMachine(MachineConfig.build(f"cpus={COLD},maxcpus={POSSIBLE}"))
        self.machine.realize()
        self.driver = GuestDriver(self.machine)
        self.enabled = set(range(COLD))
        self.online = {0}
        self.ids: dict[int, str] = {}
        self.requested: set[int] = set()
        self.serial = 0

    def teardown(self) -> None:
        self.machine.shutdown()

    def _refused(self, call: object, errors: type[BaseException] | tuple[type[BaseException], ...]
                 = VcpuhpError) -> None:
        before = self.machine.snapshot_bytes()
        try:
            call()  # type: ignore[operator]
        except errors:
            pass
        else:
            raise AssertionError("request was expected to be refused")
        assert self.machine.snapshot_bytes() == before

    def _guest_error(self, call: object) -> None:
        before = self.machine.snapshot_bytes()
        with self.machine.events.recorder() as recorder:
            call()  # type: ignore[operator]
            recorder.wait_for(ev.GUEST_ERROR, timeout=1)
        assert self.machine.snapshot_bytes() == before

    @rule(index=cpus)
    def device_add(self, index: int) -> None:
        self.serial += 1
        device_id = f"cpu{self.serial}"
        props = {"core-id": index}
        if index in self.enabled:
            self._refused(lambda: self.machine.device_add("max-arm-cpu", device_id, **props),
                          DeviceError)
            return
        self.machine.device_add("max-arm-cpu", device_id, **props)
        self.enabled.add(index)
        self.ids[index] = device_id

    @rule(index=cpus)
    def device_del(self, index: int) -> None:
        if index not in self.ids:
            target = self.machine.vcpus[index].qom_path if index < COLD else "nosuch"
            self._refused(lambda: self.machine.device_del(target))
            return
        # A repeated request asks the guest again (as QEMU): the remove event is set anew.
        self.machine.device_del(self.ids[index])
        assert self.machine.vcpus[index].remove_pending
        self.requested.add(index)

    @rule()
    def guest_scans(self) -> None:
        self.driver.scan()

    @precondition(lambda self: bool(self.online))
    @rule(index=cpus)
    def cpu_on(self, index: int) -> None:
        caller = min(self.online)
        before = self.machine.snapshot_bytes()
        result = self.driver.cpu_on(index, caller=caller)
        if index not in self.enabled:
            assert result == PsciReturn.DENIED
        elif index in self.online:
            assert result == PsciReturn.ALREADY_ON
        else:
            assert result == PsciReturn.SUCCESS
            self.online.add(index)
            return
        assert self.machine.snapshot_bytes() == before

    @rule(index=cpus)
    def cpu_off(self, index: int) -> None:
        if index not in self.online:
            self._refused(lambda: self.driver.cpu_off(index), GuestError)
            return
        before = self.machine.snapshot_bytes()
        result = self.driver.cpu_off(index)
        if self.online == {index}:
            assert result == PsciReturn.DENIED
            assert self.machine.snapshot_bytes() == before
            return
        assert result == PsciReturn.SUCCESS
        self.online.discard(index)

    @rule(index=cpus)
    def eject(self, index: int) -> None:
        self.driver.select(index)
        if index in self.ids and index not in self.online:
            self.driver.write_flags(0x8)
            self.enabled.discard(index)
            self.requested.discard(index)
            del self.ids[index]
            return
        self._guest_error(lambda: self.driver.write_flags(0x8))

    @rule(data=st.data())
    def garbage_register_write(self, data: st.DataObject) -> None:
        offset, size, value = data.draw(st.one_of(
            st.tuples(st.just(0x4), st.just(1), st.integers(0x20, 0xFF)),
            st.tuples(st.just(0x5), st.just(1), st.integers(4, 0xFF)),
            st.tuples(st.sampled_from([0x1, 0x2, 0x3, 0x6, 0x7, 0x9, 0xA, 0xB]),
                      st.sampled_from([1, 2]), st.integers(0, 0xFF)),
            st.tuples(st.just(0x0), st.sampled_from([1, 2, 8]), st.integers(0, 0xFF)),
        ))
        self._guest_error(lambda: self.machine.mmio_write(HP + offset, size, value))

    @rule(function=st.integers(0x8400_0010, 0x8400_FFFF))
    def psci_nonsense(self, function: int) -> None:
        if not self.online:
            return
        before = self.machine.snapshot_bytes()
        assert self.machine.psci_call(min(self.online), function) == PsciReturn.NOT_SUPPORTED
        assert self.machine.snapshot_bytes() == before

    @invariant()
    def masks_match_the_model(self) -> None:
        masks = self.machine.cpu_masks()
        assert masks.present == masks.possible == set(range(POSSIBLE))
        assert masks.online <= masks.enabled
        assert masks.enabled == self.enabled
        assert masks.online == self.online
        self.machine.check_invariants()


HotplugModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                          deadline=None)
TestHotplugModel = HotplugModel.TestCase
