"""The project's distributions inside the emulated host: live sources plus generated metadata.

vcpuhp finds its backends and plugins through entry points
(``vcpuhp.backends``, ``vcpuhp.plugins``) and pytest finds vcpuhp's plugin
through ``pytest11``, so the guest must see each distribution's *metadata*, not
only its packages. For every distribution directory this module reads
``pyproject.toml`` and writes a minimal ``<name>-<version>.dist-info``
(``METADATA``, ``entry_points.txt``, ``INSTALLER``) into a directory that goes
on the guest's ``PYTHONPATH``, next to the distribution's source directory.

Why not ``pip install --target``: that copies the sources, so tracebacks and
coverage name the copy instead of the checkout, edits need a reinstall, and
building the wheels needs setuptools (from PyPI, per run). The generated
metadata is the same data an editable install writes, made in milliseconds
from the live tree; ``importlib.metadata`` reads it like any other.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from arm64host.errors import BuildError

#: The distributions the kvm-arm64 environment needs inside the host, in the
#: order they go on ``PYTHONPATH``; the ones absent from a checkout are skipped.
DEFAULT_DISTS: Final = ("vcpuhp-core", "backends/null", "backends/kvm", "plugins/audit-log")


@dataclass(frozen=True)
class SourceDist:
    """One distribution of the checkout: its name, version, import root and entry points."""

    directory: Path
    name: str
    version: str
    import_root: Path
    entry_points: dict[str, dict[str, str]]

    @property
    def dist_info_name(self) -> str:
        """The ``.dist-info`` directory name (PEP 427 escaping of name and version)."""
        name = re.sub(r"[-_.]+", "_", self.name).lower()
        version = self.version.replace("-", "_")
        return f"{name}-{version}.dist-info"


def read_dist(directory: Path) -> SourceDist:
    """The :class:`SourceDist` described by ``directory/pyproject.toml``."""
    pyproject = directory / "pyproject.toml"
    try:
        data = tomllib.loads(pyproject.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BuildError(f"{pyproject}: cannot read a distribution: {exc}") from exc
    project: dict[str, Any] = data.get("project", {})
    if "name" not in project or "version" not in project:
        raise BuildError(f"{pyproject}: [project] needs a static name and version")
    groups: dict[str, dict[str, str]] = {}
    scripts = project.get("scripts", {})
    if scripts:
        groups["console_scripts"] = dict(scripts)
    for group, entries in project.get("entry-points", {}).items():
        groups[group] = dict(entries)
    where = (data.get("tool", {}).get("setuptools", {}).get("packages", {})
             .get("find", {}).get("where", ["."]))
    if len(where) != 1:
        raise BuildError(f"{pyproject}: one package root expected, found {where}")
    return SourceDist(directory=directory, name=str(project["name"]),
                      version=str(project["version"]),
                      import_root=(directory / where[0]).resolve(), entry_points=groups)


def find_dists(project_root: Path, wanted: Iterable[str]) -> list[SourceDist]:
    """The distributions among ``wanted`` (paths relative to the root) that exist."""
    found: list[SourceDist] = []
    for relative in wanted:
        directory = (project_root / relative).resolve()
        if (directory / "pyproject.toml").is_file():
            found.append(read_dist(directory))
    return found


def entry_points_text(groups: dict[str, dict[str, str]]) -> str:
    """``entry_points.txt`` content for ``groups`` (group -> name -> object reference)."""
    blocks = []
    for group in sorted(groups):
        lines = [f"[{group}]", *(f"{name} = {ref}" for name, ref in sorted(groups[group].items()))]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def write_metadata(dists: Sequence[SourceDist], site: Path) -> list[Path]:
    """Write each distribution's ``.dist-info`` into ``site``; return the import roots.

    ``site`` and the returned roots, in that order, make the guest's
    ``PYTHONPATH``.
    """
    site.mkdir(parents=True, exist_ok=True)
    for dist in dists:
        info = site / dist.dist_info_name
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist.name}\nVersion: {dist.version}\n")
        (info / "entry_points.txt").write_text(entry_points_text(dist.entry_points))
        (info / "INSTALLER").write_text("arm64host\n")
    roots: list[Path] = []
    for dist in dists:
        if dist.import_root not in roots:
            roots.append(dist.import_root)
    return roots
