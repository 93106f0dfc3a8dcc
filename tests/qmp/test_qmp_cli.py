"""`vcpuhp run --qmp unix:PATH --monitor none`: a real client plugs and unplugs, then quits."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from cli_process import Serving

from .helpers import connect, execute, next_event


async def _session(path: Path) -> list[str]:
    client = await connect(str(path), "cli-test")
    seen: list[str] = []
    await execute(client, "device_add", {"driver": "max-arm-cpu", "id": "core4", "core-id": 4})
    masks = await execute(client, "x-query-cpu-masks")
    while "4" not in masks["online"]:  # the null autopilot guest onlines it
        await asyncio.sleep(0.01)
        masks = await execute(client, "x-query-cpu-masks")
    seen.append(masks["online"])
    await execute(client, "device_del", {"id": "core4"})
    seen.append((await next_event(client, "DEVICE_DELETED"))["data"]["device"])
    await execute(client, "quit")
    with contextlib.suppress(EOFError):  # qemu.qmp re-raises the server's hang-up
        await client.disconnect()
    return seen


def test_cli_runs_until_qmp_quit(vcpuhp_serving: Serving) -> None:
    proc, path = vcpuhp_serving("qmp", "--accel", "null", "--smp", "cpus=4,maxcpus=6")
    assert asyncio.run(asyncio.wait_for(_session(path), 60)) == ["0-1,4", "core4"]
    assert proc.wait(timeout=30) == 0
