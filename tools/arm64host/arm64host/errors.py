"""The errors of the arm64host tool.

The tool is project infrastructure, not part of the ``vcpuhp`` distribution: it
must run from a bare checkout with nothing but the standard library, so it has
its own small hierarchy instead of :class:`vcpuhp.errors.VcpuhpError`. Every
message says what was wrong and what to do about it.
"""

from __future__ import annotations


class Arm64HostError(Exception):
    """Root of every error the tool raises."""


class HostToolMissing(Arm64HostError):
    """A system tool (QEMU, apt, dpkg-deb, pip) is missing and could not be installed."""


class FetchError(Arm64HostError):
    """Resolving or downloading the Debian packages or the PyPI wheel failed."""


class ImageFormatError(Arm64HostError, ValueError):
    """A kernel image, kernel module or package file is not in the expected format."""


class BuildError(Arm64HostError):
    """Building the bootable image failed."""


class GuestFailure(Arm64HostError):
    """The emulated host did not run the command to completion.

    ``console_tail`` holds the last console lines, the evidence of what happened
    (a kernel panic, an init failure, a hang until the timeout).
    """

    def __init__(self, message: str, console_tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.console_tail: list[str] = list(console_tail or [])

    def __str__(self) -> str:
        text = super().__str__()
        if not self.console_tail:
            return text
        lines = "\n".join(f"    {line}" for line in self.console_tail)
        return f"{text}\n  last console lines:\n{lines}"
