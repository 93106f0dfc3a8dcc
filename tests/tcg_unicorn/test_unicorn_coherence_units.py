"""Which maintenance instructions reach which engines (``vcpuhp_tcg_unicorn.coherence``),
without engines: the decision table and the domain's bookkeeping."""

from __future__ import annotations

import pytest
from unicorn_testlib import require_unicorn

require_unicorn()

import a64asm as a  # noqa: E402

from vcpuhp_tcg_unicorn.coherence import (  # noqa: E402
    CoherenceDomain,
    Maintenance,
    MaintenanceInbox,
    maintenance_for,
)
from vcpuhp_tcg_unicorn.decode import decode_system  # noqa: E402

TLBI_VMALLE1IS = a.sys(0, 8, 3, 0, 31)
IC_IALLUIS = a.sys(0, 7, 1, 0, 31)
IC_IALLU = a.sys(0, 7, 5, 0, 31)
AT_S1E1R = a.sys(0, 7, 8, 0, 1)
TLBI_VMALLS12E1 = a.sys(4, 8, 7, 6, 31)
"""An EL2 operation: UNDEFINED at EL1, not maintenance the backend performs."""


def decided(word: int, *, el0: bool = False, uci: bool = False) -> tuple[Maintenance, bool] | None:
    instruction = decode_system(word)
    assert instruction is not None, f"{word:#x} is a SYS instruction"
    return maintenance_for(instruction, el0=el0, uci=uci)


@pytest.mark.parametrize(("word", "expected"), [
    (a.tlbi_vae1is(1), (Maintenance.TLB, True)),
    (TLBI_VMALLE1IS, (Maintenance.TLB, True)),
    (a.tlbi_vae1(1), (Maintenance.TLB, False)),
    (a.TLBI_VMALLE1, (Maintenance.TLB, False)),
    (a.ic_ivau(1), (Maintenance.CODE, True)),
    (IC_IALLUIS, (Maintenance.CODE, True)),
    (IC_IALLU, (Maintenance.CODE, False)),
    (a.dc_cvau(1), (Maintenance.NONE, False)),
    (AT_S1E1R, None),
    (TLBI_VMALLS12E1, None),
])
def test_each_trapped_instruction_is_performed_locally_or_everywhere(
    word: int, expected: tuple[Maintenance, bool] | None
) -> None:
    assert decided(word) == expected


def test_at_el0_only_ic_ivau_and_dc_cvau_and_only_with_sctlr_uci() -> None:
    assert decided(a.tlbi_vae1is(1), el0=True, uci=True) is None
    assert decided(a.ic_ivau(1), el0=True) is None
    assert decided(a.dc_cvau(1), el0=True) is None
    assert decided(a.ic_ivau(1), el0=True, uci=True) == (Maintenance.CODE, True)
    assert decided(a.dc_cvau(1), el0=True, uci=True) == (Maintenance.NONE, False)
    assert decode_system(a.WFI) is None
    assert decode_system(a.mrs(0, 3, 0, 1, 0, 0)) is None


def test_an_inbox_says_whether_the_work_is_new_and_hands_it_over_once() -> None:
    inbox = MaintenanceInbox()
    assert inbox.post(Maintenance.TLB)
    assert not inbox.post(Maintenance.TLB)
    assert inbox.post(Maintenance.CODE)
    assert inbox.take() == Maintenance.TLB | Maintenance.CODE
    assert inbox.take() == Maintenance.NONE
    assert inbox.applied == 1


class Member:
    def __init__(self, domain: CoherenceDomain) -> None:
        self.inbox = MaintenanceInbox()
        self.stops = 0
        domain.join(self.inbox, self.stop)

    def stop(self) -> None:
        self.stops += 1

    def run_once(self) -> None:
        self.inbox.begin_run()
        self.inbox.end_run()


def test_broadcast_reaches_every_other_engine_and_stops_each_once_per_new_work() -> None:
    domain = CoherenceDomain()
    issuer, other, third = Member(domain), Member(domain), Member(domain)
    domain.broadcast(issuer.inbox, Maintenance.TLB)
    domain.broadcast(issuer.inbox, Maintenance.TLB)
    assert (other.stops, third.stops, issuer.stops) == (1, 1, 0)
    assert other.inbox.take() == Maintenance.TLB
    assert issuer.inbox.take() == Maintenance.TLB, "the issuer's own TLB too"
    domain.leave(third.inbox)
    domain.broadcast(issuer.inbox, Maintenance.TLB)
    assert (other.stops, third.stops) == (2, 1)
    assert third.inbox.take() == Maintenance.TLB  # from before it left; nothing since
    assert domain.broadcasts == 3


def test_the_issuer_drops_its_code_only_if_another_engine_ran_since() -> None:
    domain = CoherenceDomain()
    issuer, other = Member(domain), Member(domain)
    domain.broadcast(issuer.inbox, Maintenance.CODE)  # nothing known yet: drop it
    assert issuer.inbox.take() == Maintenance.CODE
    assert other.inbox.take() == Maintenance.CODE
    domain.broadcast(issuer.inbox, Maintenance.CODE)  # the other ran nothing since
    assert issuer.inbox.take() == Maintenance.NONE
    assert other.inbox.take() == Maintenance.CODE, "the others always drop theirs"
    assert domain.code_flushes_spared == 1
    other.run_once()  # it may have written code
    domain.broadcast(issuer.inbox, Maintenance.CODE)
    assert issuer.inbox.take() == Maintenance.CODE
    other.inbox.begin_run()  # running now: it may write code at any moment
    for _ in range(2):
        domain.broadcast(issuer.inbox, Maintenance.CODE)
        assert issuer.inbox.take() == Maintenance.CODE
    other.inbox.end_run()
    domain.broadcast(issuer.inbox, Maintenance.CODE | Maintenance.TLB)
    assert issuer.inbox.take() == Maintenance.CODE | Maintenance.TLB
    domain.broadcast(issuer.inbox, Maintenance.CODE | Maintenance.TLB)
    assert issuer.inbox.take() == Maintenance.TLB
    assert domain.code_flushes_spared == 2
