"""arm64host: the project's emulated arm64 KVM host, built from Debian trixie packages.

``python3 tools/arm64host/run.py run -- CMD`` boots it under
``qemu-system-aarch64`` and runs ``CMD`` inside; :class:`Arm64Host` is the same
from Python. See ``tools/arm64host/README.md``.
"""

from __future__ import annotations

from arm64host.errors import Arm64HostError, GuestFailure
from arm64host.image import HostImage
from arm64host.l2files import L2Files
from arm64host.mode import Mode
from arm64host.runner import Arm64Host, RunRequest, RunResult

__all__ = ["Arm64Host", "Arm64HostError", "GuestFailure", "HostImage", "L2Files", "Mode",
           "RunRequest", "RunResult"]
