"""A writer for the ``newc`` cpio format, the format Linux unpacks an initramfs from.

Linux ``Documentation/driver-api/early-userspace/buffer-format.rst``: each entry
is a 110-byte ASCII header (magic ``070701`` and thirteen 8-digit hex fields),
the NUL-terminated name, padding to a multiple of 4, the data, padding to a
multiple of 4; the archive ends with the entry ``TRAILER!!!``. Archives may be
concatenated: the kernel unpacks each in turn into the same root.

Every entry is owned by root and carries the modification time it is given,
so the same tree always gives the same bytes. Hard links are written as
separate files (the kernel does not need them linked).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Final

NEWC_MAGIC: Final = b"070701"
HEADER_SIZE: Final = 110
TRAILER: Final = "TRAILER!!!"
_ALIGN: Final = 4
_COPY_CHUNK: Final = 1 << 20


def _padding(length: int) -> bytes:
    return b"\0" * (-length % _ALIGN)


class CpioWriter:
    """Write newc entries to a binary stream; call :meth:`finish` once at the end."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._next_inode = 1
        self._names: set[str] = set()
        self._finished = False

    def _header(self, name: str, mode: int, size: int, mtime: int,
                rdev: tuple[int, int] = (0, 0), nlink: int = 1) -> None:
        if self._finished:
            raise ValueError("cpio archive already finished")
        if name != TRAILER:
            if name in self._names:
                raise ValueError(f"duplicate cpio entry {name!r}")
            self._names.add(name)
        encoded = name.encode() + b"\0"
        fields = (self._next_inode, mode, 0, 0, nlink, max(mtime, 0), size,
                  0, 0, rdev[0], rdev[1], len(encoded), 0)
        self._next_inode += 1
        header = NEWC_MAGIC + b"".join(b"%08X" % field for field in fields)
        self._stream.write(header + encoded + _padding(HEADER_SIZE + len(encoded)))

    def add_directory(self, name: str, mode: int = 0o755, mtime: int = 0) -> None:
        """A directory ``name`` (a relative path such as ``usr/lib``)."""
        self._header(_entry_name(name), stat.S_IFDIR | (mode & 0o7777), 0, mtime, nlink=2)

    def add_file(self, name: str, data: bytes, mode: int = 0o644, mtime: int = 0) -> None:
        """A regular file holding ``data``."""
        self._header(_entry_name(name), stat.S_IFREG | (mode & 0o7777), len(data), mtime)
        self._stream.write(data + _padding(len(data)))

    def add_file_from(self, name: str, source: Path, mode: int, mtime: int) -> None:
        """A regular file copied from ``source`` without reading it into memory at once."""
        size = source.stat().st_size
        self._header(_entry_name(name), stat.S_IFREG | (mode & 0o7777), size, mtime)
        copied = 0
        with source.open("rb") as src:
            while chunk := src.read(_COPY_CHUNK):
                self._stream.write(chunk)
                copied += len(chunk)
        if copied != size:
            raise OSError(f"{source} changed size while being archived")
        self._stream.write(_padding(size))

    def add_symlink(self, name: str, target: str, mtime: int = 0) -> None:
        """A symbolic link ``name`` -> ``target``."""
        data = target.encode()
        self._header(_entry_name(name), stat.S_IFLNK | 0o777, len(data), mtime)
        self._stream.write(data + _padding(len(data)))

    def add_char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        """A character device node (``dev/console`` is 5:1)."""
        self._header(_entry_name(name), stat.S_IFCHR | (mode & 0o7777), 0, 0,
                     rdev=(major, minor))

    def add_tree(self, root: Path, prefix: str = "") -> int:
        """Every entry under ``root`` (sorted, parents first) as ``prefix/relative``.

        Returns the number of entries written. Sockets, FIFOs and device nodes in
        the tree are refused: an initramfs tree is built from package contents.
        """
        count = 0
        for directory, subdirs, files in os.walk(root):
            subdirs.sort()
            here = Path(directory)
            for entry in [*sorted(subdirs), *sorted(files)]:
                path = here / entry
                name = str(PurePosixPath(prefix) / path.relative_to(root))
                info = path.lstat()
                mtime = int(info.st_mtime)
                if stat.S_ISLNK(info.st_mode):
                    self.add_symlink(name, os.readlink(path), mtime)
                elif stat.S_ISDIR(info.st_mode):
                    self.add_directory(name, info.st_mode, mtime)
                elif stat.S_ISREG(info.st_mode):
                    self.add_file_from(name, path, info.st_mode, mtime)
                else:
                    raise ValueError(f"{path}: cannot archive a special file "
                                     f"(mode {info.st_mode:o}) into an initramfs")
                count += 1
        return count

    def finish(self) -> None:
        """Write the trailer entry; the archive is complete afterwards."""
        self._header(TRAILER, 0, 0, 0, nlink=1)
        self._finished = True


def _entry_name(name: str) -> str:
    clean = str(PurePosixPath(name.lstrip("/")))
    if clean in ("", ".") or ".." in PurePosixPath(clean).parts:
        raise ValueError(f"bad cpio entry name {name!r}: a relative path inside the archive "
                         "is required")
    return clean
