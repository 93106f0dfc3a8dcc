"""Debian packages for another architecture through a private apt configuration.

apt is pointed at a directory of its own through ``APT_CONFIG``: its own
sources list (one suite of one mirror), lists, archive cache, log and an empty
dpkg status file, with the machine's ``/etc/apt`` configuration parts and
trusted keys left out. The machine's apt and dpkg state is never read or
written. With an empty status nothing counts as installed, so ``apt-get
install`` resolves the *whole* dependency closure of the requested packages;
``--print-uris`` reports it (URL, file name, size, SHA256) without
downloading, ``--download-only`` fetches it into the private archive cache.

Signatures are checked as usual: the sources entry names the keyring with
``signed-by``; Debian's ``debian-archive-keyring`` (bookworm's, from
2023.3+deb12u1 on) carries the trixie archive and release keys.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from arm64host.errors import FetchError

DEFAULT_MIRROR: Final = "http://deb.debian.org/debian"
DEFAULT_KEYRING: Final = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
#: How long one apt-get call may take (a full download of ~130 MB included).
APT_TIMEOUT_S: Final = 1800.0
_URI_LINE: Final = re.compile(
    r"^'(?P<url>[^']+)' (?P<file>\S+) (?P<size>\d+) (?P<algo>[A-Za-z0-9]+):(?P<hash>[0-9a-f]+)$")


@dataclass(frozen=True, order=True)
class DebFile:
    """One package of a resolved closure, as apt would download it."""

    name: str
    version: str
    arch: str
    filename: str
    url: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, str | int]:
        """The fields as a JSON object (for the manifest)."""
        return {"name": self.name, "version": self.version, "arch": self.arch,
                "filename": self.filename, "url": self.url, "size": self.size,
                "sha256": self.sha256}

    @classmethod
    def from_json(cls, obj: dict[str, str | int]) -> DebFile:
        """The inverse of :meth:`to_json`."""
        return cls(name=str(obj["name"]), version=str(obj["version"]), arch=str(obj["arch"]),
                   filename=str(obj["filename"]), url=str(obj["url"]), size=int(obj["size"]),
                   sha256=str(obj["sha256"]))


def parse_print_uris(text: str) -> list[DebFile]:
    """The packages of ``apt-get install --print-uris -o Acquire::ForceHash=SHA256`` output.

    Each line is ``'URL' FILE SIZE SHA256:HEX``; the file name is
    ``name_version_arch.deb`` with the version's ``:`` written ``%3a``. Lines
    of another shape (apt's notices) are ignored; a .deb line without a SHA256
    is an error, since nothing could then be verified.
    """
    packages: list[DebFile] = []
    for line in text.splitlines():
        match = _URI_LINE.match(line.strip())
        if match is None or not match["file"].endswith(".deb"):
            continue
        if match["algo"].upper() != "SHA256":
            raise FetchError(f"apt reported a {match['algo']} hash for {match['file']}; "
                             "SHA256 is required (Acquire::ForceHash=SHA256)")
        stem = match["file"][: -len(".deb")]
        parts = stem.split("_")
        if len(parts) != 3:
            raise FetchError(f"unexpected package file name {match['file']!r} "
                             "(expected name_version_arch.deb)")
        name, version, arch = parts
        packages.append(DebFile(name=name, version=urllib.parse.unquote(version), arch=arch,
                                filename=match["file"], url=match["url"],
                                size=int(match["size"]), sha256=match["hash"]))
    return sorted(packages)


def sha256_of(path: Path) -> str:
    """The SHA256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class PrivateApt:
    """apt for ``arch`` packages of ``suite``, with every file under ``root``."""

    def __init__(self, root: Path, *, suite: str = "trixie", arch: str = "arm64",
                 mirror: str = DEFAULT_MIRROR, keyring: Path = DEFAULT_KEYRING) -> None:
        self.root = root
        self.suite = suite
        self.arch = arch
        self.mirror = mirror
        self.keyring = keyring

    @property
    def archives(self) -> Path:
        """Where downloaded ``.deb`` files are kept."""
        return self.root / "cache" / "archives"

    @property
    def config_file(self) -> Path:
        """The file ``APT_CONFIG`` names."""
        return self.root / "apt.conf"

    def _configure(self) -> None:
        for sub in ("etc/apt.conf.d", "etc/preferences.d", "etc/sources.list.d",
                    "etc/trusted.gpg.d", "state/lists/partial", "cache/archives/partial",
                    "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "state" / "status").touch()
        (self.root / "etc" / "sources.list").write_text(
            f"deb [arch={self.arch} signed-by={self.keyring}] {self.mirror} {self.suite} main\n")
        r = self.root
        settings = {
            "Dir::Etc": f"{r}/etc/",
            "Dir::Etc::main": "/dev/null",
            "Dir::Etc::parts": f"{r}/etc/apt.conf.d/",
            "Dir::Etc::sourcelist": f"{r}/etc/sources.list",
            "Dir::Etc::sourceparts": f"{r}/etc/sources.list.d/",
            "Dir::Etc::preferences": f"{r}/etc/preferences",
            "Dir::Etc::preferencesparts": f"{r}/etc/preferences.d/",
            "Dir::Etc::trusted": f"{r}/etc/trusted.gpg",
            "Dir::Etc::trustedparts": f"{r}/etc/trusted.gpg.d/",
            "Dir::State": f"{r}/state/",
            "Dir::State::status": f"{r}/state/status",
            "Dir::Cache": f"{r}/cache/",
            "Dir::Log": f"{r}/log/",
            "APT::Architecture": self.arch,
            "APT::Install-Recommends": "false",
            "APT::Install-Suggests": "false",
            "APT::Sandbox::User": "root",
            "Acquire::Languages": "none",
            "Acquire::ForceHash": "SHA256",
            "Acquire::Retries": "3",
        }
        lines = [f'{key} "{value}";' for key, value in settings.items()]
        lines.append(f'APT::Architectures {{ "{self.arch}"; }};')
        self.config_file.write_text("\n".join(lines) + "\n")

    def _apt_get(self, *args: str) -> str:
        self._configure()
        env = {**os.environ, "APT_CONFIG": str(self.config_file),
               "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
        command = ["apt-get", "-q", *args]
        try:
            done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=APT_TIMEOUT_S,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise FetchError(f"{' '.join(command)} took longer than {APT_TIMEOUT_S:.0f} s") \
                from exc
        if done.returncode != 0:
            raise FetchError(
                f"APT_CONFIG={self.config_file} {' '.join(command)} failed "
                f"(exit {done.returncode}):\n{done.stderr.strip() or done.stdout.strip()}"
                + self._keyring_hint(done.stderr))
        return done.stdout

    def _keyring_hint(self, stderr: str) -> str:
        if "NO_PUBKEY" not in stderr and "not signed" not in stderr:
            return ""
        return (f"\nThe {self.suite} archive signature could not be verified with "
                f"{self.keyring}: install a debian-archive-keyring that carries the "
                f"{self.suite} keys (bookworm's 2023.3+deb12u1 or later).")

    def update(self) -> None:
        """Fetch the (signed) package index of the suite."""
        self._apt_get("update")

    def has_index(self) -> bool:
        """Whether :meth:`update` has fetched an index before."""
        lists = self.root / "state" / "lists"
        return lists.is_dir() and any(lists.glob("*_Packages*"))

    def resolve(self, packages: Sequence[str]) -> list[DebFile]:
        """The full dependency closure of ``packages`` (nothing counts as installed)."""
        # An empty archives dir makes apt print every package, cached or not.
        probe = self.root / "cache" / "probe-archives"
        (probe / "partial").mkdir(parents=True, exist_ok=True)
        text = self._apt_get("install", "--print-uris", "-qq",
                             "-o", f"Dir::Cache::archives={probe}/", *packages)
        closure = parse_print_uris(text)
        if not closure:
            raise FetchError(f"apt resolved no packages for {list(packages)}")
        return closure

    def download(self, closure: Sequence[DebFile]) -> None:
        """Download every package of ``closure`` that is not cached yet, at its exact version.

        apt checks each file against the signed index; a version the mirror no
        longer has is an error (resolve again with a fresh index).
        """
        missing = [deb for deb in closure if not self.is_cached(deb)]
        if not missing:
            return
        if not self.has_index():
            self.update()
        self._apt_get("install", "--download-only", "-y",
                      *(f"{deb.name}={deb.version}" for deb in missing))
        still = [deb.filename for deb in closure if not self.is_cached(deb)]
        if still:
            raise FetchError(f"apt did not download {still} into {self.archives}")

    def is_cached(self, deb: DebFile) -> bool:
        """Whether ``deb`` is in the archive cache with its size and SHA256."""
        path = self.archives / deb.filename
        return (path.is_file() and path.stat().st_size == deb.size
                and sha256_of(path) == deb.sha256)
