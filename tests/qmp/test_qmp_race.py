"""Clients racing on the same slot: the machine lock decides, state stays consistent."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from qemu.qmp import ExecuteError

from vcpuhp import VirtMachine
from vcpuhp_null import GuestDriver

from .helpers import RawClient, connect, execute, run

ITERATIONS = 40


def test_two_clients_racing_device_add_on_one_slot(
    qmp_path: str, machine: VirtMachine, guest: GuestDriver
) -> None:
    async def add(client: object, device_id: str) -> str:
        await execute(client, "device_add",  # type: ignore[arg-type]
                      {"driver": "max-arm-cpu", "id": device_id, "core-id": 5})
        return device_id

    async def body() -> None:
        first, second = await connect(qmp_path, "first"), await connect(qmp_path, "second")
        for i in range(ITERATIONS):
            results = await asyncio.gather(add(first, f"a{i}"), add(second, f"b{i}"),
                                           return_exceptions=True)
            winners = [r for r in results if isinstance(r, str)]
            losers = [r for r in results if isinstance(r, ExecuteError)]
            assert len(winners) == 1 and len(losers) == 1, results
            assert losers[0].error_class == "GenericError"
            assert f"already plugged (by '{winners[0]}')" in str(losers[0])
            assert machine.vcpus[5].device_id == winners[0]
            machine.check_invariants()
            guest.handle_hotplug()

            results = await asyncio.gather(
                execute(first, "device_del", {"id": winners[0]}),
                execute(second, "device_del", {"id": winners[0]}),
                return_exceptions=True)
            # Both succeed: the second asks the guest again (as QEMU), one eject follows.
            assert results == [{}, {}], results
            guest.handle_hotplug()
            assert not machine.vcpus[5].enabled
            machine.check_invariants()
        for client in (first, second):
            await client.disconnect()

    run(body(), timeout=60)


def _plug_together(clients: list[RawClient], core_id: int, prefix: str
                   ) -> list[dict[str, object]]:
    """Every client sends ``device_add`` for the same slot at the same moment."""
    barrier = threading.Barrier(len(clients))
    replies: list[dict[str, object]] = []
    lock = threading.Lock()

    def plug(client: RawClient, name: str) -> None:
        barrier.wait(5)
        reply = client.command("device_add", {"driver": "max-arm-cpu", "id": name,
                                              "core-id": core_id})
        with lock:
            replies.append(reply)

    threads = [threading.Thread(target=plug, args=(client, f"{prefix}x{n}"))
               for n, client in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return replies


def test_threads_racing_device_add_over_raw_sockets(
    raw_client: Callable[..., RawClient], machine: VirtMachine, guest: GuestDriver
) -> None:
    clients = [raw_client() for _ in range(4)]
    for i in range(ITERATIONS // 2):
        replies = _plug_together(clients, 4, f"t{i}")
        assert len(replies) == len(clients)
        assert [r for r in replies if "return" in r] == [{"return": {}}]
        machine.check_invariants()
        winner = machine.vcpus[4].device_id
        assert winner is not None
        for reply in replies:
            if "error" in reply:
                assert reply["error"] == {
                    "class": "GenericError",
                    "desc": "CPU slot socket-id=0,cluster-id=0,core-id=4,thread-id=0 is "
                            f"already plugged (by '{winner}')"}
        guest.handle_hotplug()
        assert clients[0].command("device_del", {"id": winner}) == {"return": {}}
        guest.handle_hotplug()
        machine.check_invariants()
        assert not machine.vcpus[4].enabled
