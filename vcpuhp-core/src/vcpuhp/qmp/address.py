"""Where a QMP server listens: ``unix:PATH`` or ``tcp:HOST:PORT``.

TCP is loopback-only unless the caller explicitly allows remote clients: QMP
has no authentication, and anyone who can connect can plug CPUs or quit.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from vcpuhp.errors import ConfigError

_FORMS: Final = "use unix:PATH or tcp:HOST:PORT (e.g. tcp:127.0.0.1:4444)"
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@dataclass(frozen=True)
class UnixAddress:
    """A unix socket path (created with mode 0600)."""

    path: Path

    def __str__(self) -> str:
        return f"unix:{self.path}"


@dataclass(frozen=True)
class TcpAddress:
    """A TCP host and port; port 0 picks a free port."""

    host: str
    port: int

    @property
    def is_loopback(self) -> bool:
        """True when ``host`` is a loopback address or a well-known loopback name."""
        if self.host.lower() in _LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"


QmpAddress = UnixAddress | TcpAddress


def parse_address(text: str) -> QmpAddress:
    """Parse a ``--qmp`` address: ``unix:PATH`` or ``tcp:HOST:PORT``.

    IPv6 hosts go in brackets (``tcp:[::1]:4444``). Raises :class:`ConfigError`
    saying what is valid.
    """
    kind, sep, rest = text.partition(":")
    if not sep or not rest:
        raise ConfigError(f"QMP address {text!r} is invalid; {_FORMS}")
    if kind == "unix":
        return UnixAddress(Path(rest))
    if kind != "tcp":
        raise ConfigError(f"QMP address kind {kind!r} is not supported; {_FORMS}")
    host, sep, port_text = rest.rpartition(":")
    if not sep:
        raise ConfigError(f"QMP address {text!r} lacks a port; {_FORMS}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"QMP address {text!r}: put an IPv6 host in brackets, tcp:[::1]:PORT")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"QMP port {port_text!r} is invalid; valid ports are 0-65535")
    return TcpAddress(host, int(port_text))


def check_exposure(address: QmpAddress, *, allow_remote: bool) -> None:
    """Refuse a TCP address that is reachable from other hosts unless ``allow_remote``.

    An empty host means every interface, which counts as remote.
    """
    if isinstance(address, TcpAddress) and not allow_remote and not address.is_loopback:
        shown = address.host or "every interface"
        raise ConfigError(
            f"QMP address {address} listens on {shown}, which other hosts can reach; QMP has "
            "no authentication. Use a loopback host (127.0.0.1, ::1, localhost) or allow "
            "remote clients explicitly (--qmp-allow-remote / allow_remote=True)"
        )
