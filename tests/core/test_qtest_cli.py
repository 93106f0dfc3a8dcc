"""`vcpuhp run --accel null --qtest unix:PATH`: the test protocol served by the real CLI."""

from __future__ import annotations

import signal

from cli_process import Serving
from vcpuhp_null.protocol import ProtocolClient


def test_cli_serves_the_test_protocol(vcpuhp_serving: Serving) -> None:
    proc, path = vcpuhp_serving("qtest", "--accel", "null", "--smp", "cpus=2,maxcpus=4")
    try:
        assert path.stat().st_mode & 0o777 == 0o600
        ask = ProtocolClient.connect(f"unix:{path}")

        assert ask("masks") == "OK possible 0-3 present 0-3 enabled 0-1 online 0"
        assert ask("psci 0 CPU_ON_64 0x80000001 0x40200000 1") == "OK 0"
        assert ask("psci 0 CPU_ON_64 0x80000002 0x40200000 2") == "OK -3"
        assert ask("masks") == "OK possible 0-3 present 0-3 enabled 0-1 online 0-1"
        ask.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert not path.exists(), "socket file removed at exit"
