"""The ``newc`` cpio format Linux unpacks an initramfs from.

Linux ``Documentation/driver-api/early-userspace/buffer-format.rst``: every
entry is a 110-byte ASCII header (magic ``070701`` and thirteen 8-digit
upper-case hex fields: inode, mode, uid, gid, nlink, mtime, file size, device
major/minor, rdev major/minor, name size, checksum), the NUL-terminated name,
padding to 4 bytes, the data, padding to 4 bytes. ``TRAILER!!!`` ends the
archive.

Entries are owned by root with mtime 0, so the same input always gives the
same bytes.
"""

from __future__ import annotations

import stat
from pathlib import PurePosixPath
from typing import Final

MAGIC: Final = b"070701"
HEADER_SIZE: Final = 110
TRAILER: Final = "TRAILER!!!"


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


class NewcArchive:
    """An archive built in memory; :meth:`to_bytes` adds the trailer."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._names: set[str] = set()
        self._inode = 0

    @property
    def names(self) -> frozenset[str]:
        """The entry names written so far."""
        return frozenset(self._names)

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0),
               nlink: int = 1) -> None:
        if name != TRAILER:
            name = _checked_name(name)
            if name in self._names:
                raise ValueError(f"duplicate initramfs entry {name!r}")
            self._names.add(name)
        self._inode += 1
        encoded = name.encode() + b"\0"
        fields = (self._inode, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
                  len(encoded), 0)
        header = MAGIC + b"".join(b"%08X" % value for value in fields)
        self._parts.append(header + encoded + _pad(HEADER_SIZE + len(encoded)))
        self._parts.append(data + _pad(len(data)))

    def directory(self, name: str, mode: int = 0o755) -> None:
        """A directory (its parents must come first)."""
        self._entry(name, stat.S_IFDIR | mode, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        """A regular file."""
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        """A symbolic link ``name`` -> ``target``."""
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        """A character device node."""
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def to_bytes(self) -> bytes:
        """The archive with its trailer."""
        trailer = NewcArchive()
        trailer._entry(TRAILER, 0)
        return b"".join([*self._parts, *trailer._parts])


def _checked_name(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or ".." in path.parts or str(path) == ".":
        raise ValueError(f"initramfs entry name {name!r} must be a relative path inside it")
    return str(path)


__all__ = ["HEADER_SIZE", "MAGIC", "TRAILER", "NewcArchive"]
