"""harness.debian: spec → package name and the newest package of a series (pure), cache lookup."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from harness import debian
from harness.errors import KernelError

# `apt-cache pkgnames linux-image-6.1 | sort -V` on a Debian 12 host with bookworm-backports:
# 6.1.0-N, 6.12.x+deb12, the 6.12 meta-packages, -cloud/-rt flavours, -dbg and -unsigned.
PKGNAMES = (Path(__file__).parent / "data" / "debian" / "apt-cache-pkgnames-linux-image-6.1.txt"
            ).read_text().split()


@pytest.mark.parametrize("spec,package", [
    ("6.1.0-56", "linux-image-6.1.0-56-amd64"),
    ("6.1.0-56-amd64", "linux-image-6.1.0-56-amd64"),  # the uname -r form
    ("6.12.117+deb12-cloud-amd64", "linux-image-6.12.117+deb12-cloud-amd64"),
    ("6.1.0-56-cloud", "linux-image-6.1.0-56-cloud-amd64"),
    ("6.1.0-56-rt", "linux-image-6.1.0-56-rt-amd64"),
    ("6.12.117+deb12", "linux-image-6.12.117+deb12-amd64"),
    ("6.12.117+deb12-cloud", "linux-image-6.12.117+deb12-cloud-amd64"),
    ("9.99.0-1", "linux-image-9.99.0-1-amd64"),
])
def test_package_name(spec: str, package: str) -> None:
    assert debian.package_name(spec) == package


@pytest.mark.parametrize("spec", ["6.12", "6.1-cloud", "6.1-rt", "", "foo", "6",
                                  "6.1.0-56-xen", "../6.1.0-56"])
def test_package_name_rejects(spec: str) -> None:
    with pytest.raises(KernelError, match=r"not a full Debian kernel version"):
        debian.package_name(spec)


@pytest.mark.parametrize("series,flavour,newest", [
    ("6.1", "", "linux-image-6.1.0-56-amd64"),
    ("6.1", "cloud", "linux-image-6.1.0-56-cloud-amd64"),
    ("6.1", "rt", "linux-image-6.1.0-56-rt-amd64"),
    ("6.12", "", "linux-image-6.12.117+deb12-amd64"),
    ("6.12", "cloud", "linux-image-6.12.117+deb12-cloud-amd64"),
])
def test_newest_in_series_recorded_list(series: str, flavour: str, newest: str) -> None:
    assert debian.newest_in_series(series, flavour, PKGNAMES) == newest


def test_order_of_candidates_does_not_matter() -> None:
    shuffled = PKGNAMES[:]
    random.Random(4).shuffle(shuffled)
    assert debian.newest_in_series("6.1", "", shuffled) == "linux-image-6.1.0-56-amd64"
    assert debian.newest_in_series("6.12", "", shuffled[::-1]) == "linux-image-6.12.117+deb12-amd64"


def test_series_6_1_never_matches_6_12() -> None:
    only_612 = [p for p in PKGNAMES if p.startswith("linux-image-6.12")]
    assert only_612
    assert debian.newest_in_series("6.1", "", only_612) is None
    assert debian.newest_in_series("6.1", "cloud", only_612) is None


def test_numeric_not_lexical_order() -> None:
    pkgs = ["linux-image-6.1.0-9-amd64", "linux-image-6.1.0-56-amd64", "linux-image-6.1.0-10-amd64"]
    assert debian.newest_in_series("6.1", "", pkgs) == "linux-image-6.1.0-56-amd64"
    pkgs = ["linux-image-6.12.99+deb12-amd64", "linux-image-6.12.100+deb12-amd64"]
    assert debian.newest_in_series("6.12", "", pkgs) == "linux-image-6.12.100+deb12-amd64"


def test_meta_and_non_image_packages_excluded() -> None:
    pkgs = ["linux-image-6.12-amd64", "linux-image-6.12-cloud-amd64", "linux-image-6.12-amd64-dbg",
            "linux-image-6.12-amd64-signed-template", "linux-image-6.12.117+deb12-amd64-dbg",
            "linux-image-6.12.117+deb12-amd64-unsigned", "linux-image-amd64"]
    assert debian.newest_in_series("6.12", "", pkgs) is None
    assert debian.newest_in_series("6.12", "cloud", pkgs) is None


def test_flavours_do_not_mix() -> None:
    pkgs = ["linux-image-6.1.0-57-cloud-amd64", "linux-image-6.1.0-58-rt-amd64", "linux-image-6.1.0-56-amd64"]
    assert debian.newest_in_series("6.1", "", pkgs) == "linux-image-6.1.0-56-amd64"
    assert debian.newest_in_series("6.1", "cloud", pkgs) == "linux-image-6.1.0-57-cloud-amd64"
    assert debian.newest_in_series("6.1", "rt", pkgs) == "linux-image-6.1.0-58-rt-amd64"


def test_empty_candidates() -> None:
    assert debian.newest_in_series("6.12", "", []) is None


# --- resolve_package / cache, with apt and the cache dir replaced ---------------------------


def fake_cache(root: Path, package: str, version: str, release: str) -> None:
    d = root / "harness" / "kernels" / "debian" / package
    d.mkdir(parents=True)
    (d / "meta.json").write_text(json.dumps({"package": package, "version": version, "release": release}))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(debian, "_apt_names", lambda prefix: [])
    return tmp_path


def test_resolve_package_full_spec_needs_no_apt(offline: Path) -> None:
    assert debian.resolve_package("6.1.0-56") == "linux-image-6.1.0-56-amd64"


def test_resolve_package_series_from_apt(monkeypatch: pytest.MonkeyPatch, offline: Path) -> None:
    asked = []

    def names(prefix: str) -> list[str]:
        asked.append(prefix)
        return [p for p in PKGNAMES if p.startswith(prefix)]

    monkeypatch.setattr(debian, "_apt_names", names)
    assert debian.resolve_package("6.12-cloud") == "linux-image-6.12.117+deb12-cloud-amd64"
    assert asked == ["linux-image-6.12"]


def test_resolve_package_series_falls_back_on_cache(offline: Path) -> None:
    fake_cache(offline, "linux-image-6.1.0-50-amd64", "6.1.158-1", "6.1.0-50-amd64")
    fake_cache(offline, "linux-image-6.1.0-56-amd64", "6.1.192-2", "6.1.0-56-amd64")
    fake_cache(offline, "linux-image-6.12.117+deb12-amd64", "6.12.117-1~deb12u1", "6.12.117+deb12-amd64")
    (offline / "harness" / "kernels" / "debian" / "linux-image-6.1.0-99-amd64").mkdir()  # no meta.json
    assert debian.resolve_package("6.1") == "linux-image-6.1.0-56-amd64"
    assert debian.resolve_package("6.12") == "linux-image-6.12.117+deb12-amd64"


def test_resolve_package_unknown_series(offline: Path) -> None:
    with pytest.raises(KernelError, match=r"debian:6\.99: no linux-image-6\.99\.\* package"):
        debian.resolve_package("6.99")


def test_cached_packages_and_load_cached(offline: Path) -> None:
    assert debian.cached_packages() == []
    assert debian.load_cached("linux-image-6.1.0-56-amd64") is None
    fake_cache(offline, "linux-image-6.1.0-56-amd64", "6.1.192-2", "6.1.0-56-amd64")
    assert debian.cached_packages() == ["linux-image-6.1.0-56-amd64"]
    dk = debian.load_cached("linux-image-6.1.0-56-amd64")
    assert dk is not None
    root = offline / "harness" / "kernels" / "debian" / "linux-image-6.1.0-56-amd64"
    assert dk.version == "6.1.192-2" and dk.release == "6.1.0-56-amd64" and dk.root == root
    assert dk.bzimage == root / "boot" / "vmlinuz-6.1.0-56-amd64"
    assert dk.config_path == root / "boot" / "config-6.1.0-56-amd64"
    assert dk.modules_dir == root / "lib" / "modules" / "6.1.0-56-amd64"


def test_fetch_uses_the_cache_without_any_tool(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cache(offline, "linux-image-6.1.0-56-amd64", "6.1.192-2", "6.1.0-56-amd64")
    monkeypatch.setenv("PATH", str(offline / "nothing-here"))
    dk = debian.fetch("linux-image-6.1.0-56-amd64")
    assert dk.version == "6.1.192-2"
