"""``python3 -m vcpuhp.testing.linux_userland``: write the test userland's initramfs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from vcpuhp.errors import VcpuhpError
from vcpuhp.testing.linux_userland.build import build_initramfs_file


def main(argv: Sequence[str] | None = None) -> int:
    """Build the initramfs; 0 on success, 2 with a message on bad input."""
    parser = argparse.ArgumentParser(
        prog="python3 -m vcpuhp.testing.linux_userland",
        description="Build vcpuhp's Linux test userland (an uncompressed initramfs) from a "
                    "static arm64 busybox.")
    parser.add_argument("--busybox", type=Path, required=True,
                        help="static arm64 busybox (Debian busybox-static: /usr/bin/busybox)")
    parser.add_argument("--module", type=Path, action="append", default=[],
                        help="kernel module to load at start (.ko, .ko.xz, .ko.gz), in order; "
                             "give the kernel's evdev so that system_powerdown powers off")
    parser.add_argument("-o", "--output", type=Path, required=True, help="initramfs to write")
    args = parser.parse_args(argv)
    try:
        size = build_initramfs_file(args.busybox, args.output, args.module)
    except VcpuhpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.output}: {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
