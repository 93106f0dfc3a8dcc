"""The private apt: print-uris parsing, the kernel pick, its configuration, the image key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from arm64host.apt import DebFile, PrivateApt, parse_print_uris
from arm64host.errors import FetchError
from arm64host.image import image_key
from arm64host.packages import Resolution, kernel_debs, requested_packages

PRINT_URIS = """\
Reading package lists...
'http://deb.debian.org/debian/pool/main/b/busybox/busybox-static_1.37.0-6%2bb9_arm64.deb' busybox-static_1%3a1.37.0-6+b9_arm64.deb 847552 SHA256:c833be48abfa16bc19c4966ec93e289ff1ce5d2f1476cad3a57bd105378cd15c
'http://deb.debian.org/debian/pool/main/p/python3-defaults/python3_3.13.5-1_arm64.deb' python3_3.13.5-1_arm64.deb 28000 SHA256:00aa
'http://deb.debian.org/debian/dists/trixie/InRelease' deb.debian.org_debian_dists_trixie_InRelease 0
"""  # noqa: E501


def test_print_uris_gives_names_versions_sizes_and_hashes() -> None:
    busybox, python3 = parse_print_uris(PRINT_URIS)
    assert busybox.name == "busybox-static"
    assert busybox.version == "1:1.37.0-6+b9"
    assert busybox.arch == "arm64"
    assert busybox.filename == "busybox-static_1%3a1.37.0-6+b9_arm64.deb"
    assert busybox.size == 847552
    assert busybox.sha256.startswith("c833be48")
    assert (python3.name, python3.version, python3.sha256) == ("python3", "3.13.5-1", "00aa")


def test_a_deb_without_sha256_is_refused() -> None:
    line = "'http://x/p_1_arm64.deb' p_1_arm64.deb 10 MD5Sum:997abac31f8022d31dcda6d27ab7aa1e"
    with pytest.raises(FetchError, match="SHA256 is required"):
        parse_print_uris(line)


def deb(name: str, version: str = "1") -> DebFile:
    return DebFile(name=name, version=version, arch="arm64", filename=f"{name}_{version}.deb",
                   url=f"http://x/{name}", size=1, sha256="ab")


def test_the_kernel_pick_keeps_the_image_packages_only() -> None:
    closure = [deb("kmod"), deb("linux-image-6.12.1-arm64"), deb("linux-image-arm64"),
               deb("initramfs-tools")]
    assert [d.name for d in kernel_debs(closure)] == ["linux-image-6.12.1-arm64",
                                                      "linux-image-arm64"]
    with pytest.raises(FetchError, match="no versioned linux-image"):
        kernel_debs([deb("linux-image-arm64"), deb("kmod")])


def test_the_configuration_is_private_and_signed(tmp_path: Path) -> None:
    apt = PrivateApt(tmp_path / "apt", keyring=Path("/k.gpg"))
    apt._configure()
    sources = (tmp_path / "apt" / "etc" / "sources.list").read_text()
    assert sources == ("deb [arch=arm64 signed-by=/k.gpg] http://deb.debian.org/debian "
                       "trixie main\n")
    config = apt.config_file.read_text()
    assert f'Dir::State::status "{tmp_path}/apt/state/status";' in config
    assert 'Dir::Etc::main "/dev/null";' in config
    assert 'APT::Architectures { "arm64"; };' in config
    assert "trusted=yes" not in config + sources
    assert (tmp_path / "apt" / "state" / "status").read_text() == ""


def test_a_resolution_round_trips_and_its_versions_key_the_image() -> None:
    resolution = Resolution(suite="trixie", mirror="http://m", requested=requested_packages(),
                            userland=[deb("python3", "3.13.5-1")],
                            kernel=[deb("linux-image-6.12.1-arm64")])
    assert Resolution.from_json(resolution.to_json()) == resolution
    newer = replace(resolution, userland=[deb("python3", "3.13.5-2")])
    assert image_key(resolution) == image_key(Resolution.from_json(resolution.to_json()))
    assert image_key(newer) != image_key(resolution)
