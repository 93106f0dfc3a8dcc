"""The per-vCPU state machine moves only along the edges drawn in :mod:`vcpuhp.vcpu`."""

from __future__ import annotations

import pytest

from vcpuhp import StateError, VcpuState
from vcpuhp.vcpu import next_state

LIFE = [("plug", VcpuState.POWERED_OFF), ("cpu_on", VcpuState.ON_PENDING),
        ("started", VcpuState.ONLINE), ("cpu_off", VcpuState.POWERED_OFF),
        ("eject", VcpuState.UNPLUGGED)]


def test_the_life_of_a_vcpu() -> None:
    state = VcpuState.UNPLUGGED
    for action, expected in LIFE:
        state = next_state(state, action)
        assert state is expected


@pytest.mark.parametrize(
    ("state", "action", "message"),
    [
        (VcpuState.UNPLUGGED, "cpu_on", "cannot cpu_on a CPU that is unplugged; valid here: plug"),
        (VcpuState.ONLINE, "eject", "cannot eject a CPU that is online; valid here: cpu_off"),
        (VcpuState.POWERED_OFF, "plug", "valid here: cpu_on, eject, reset"),
        (VcpuState.ON_PENDING, "cpu_off", "valid here: reset, started"),
    ],
)
def test_no_shortcuts(state: VcpuState, action: str, message: str) -> None:
    with pytest.raises(StateError, match=message):
        next_state(state, action)
