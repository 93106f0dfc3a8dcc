"""Claiming a unix socket path the way QEMU does, for every server vcpuhp runs.

A socket left behind by a process that died (``kill -9``) is replaced; a
socket somebody still listens on, or any other kind of file, is refused with
a :class:`~vcpuhp.errors.ConfigError` that says which.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat

from vcpuhp.errors import ConfigError


def remove_stale_socket(path: str, what: str = "socket") -> None:
    """Unlink ``path`` if it is a socket nobody listens on; refuse anything else.

    :param what: names the server in error messages (``"QMP socket"``).
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ConfigError(f"{what} path {path} exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise ConfigError(f"{what} {path}: cannot check whether it is in use: "
                              f"{exc.strerror}") from None
    else:
        raise ConfigError(f"{what} {path} is in use by another server")
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


__all__ = ["remove_stale_socket"]
