"""harness.debian: spec → package name and the newest package of a series (pure), cache lookup."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from harness.errors import KernelError
from harness.kernels import aptstate, debian
from tests.helpers import paths

# `apt-cache pkgnames linux-image-6.1 | sort -V` on a Debian 12 host with bookworm-backports:
# 6.1.0-N, 6.12.x+deb12, the 6.12 meta-packages, -cloud/-rt flavours, -dbg and -unsigned.
DATA = paths.DATA / "debian"


@pytest.mark.parametrize(
    "spec,package",
    [
        ("6.1.0-56", "linux-image-6.1.0-56-amd64"),
        ("6.1.0-56-amd64", "linux-image-6.1.0-56-amd64"),  # the uname -r form
        ("6.12.117+deb12-cloud-amd64", "linux-image-6.12.117+deb12-cloud-amd64"),
        ("6.1.0-56-cloud", "linux-image-6.1.0-56-cloud-amd64"),
        ("6.1.0-56-rt", "linux-image-6.1.0-56-rt-amd64"),
        ("6.12.117+deb12", "linux-image-6.12.117+deb12-amd64"),
        ("6.12.117+deb12-cloud", "linux-image-6.12.117+deb12-cloud-amd64"),
        ("9.99.0-1", "linux-image-9.99.0-1-amd64"),
    ],
)
def test_package_name(spec: str, package: str) -> None:
    assert debian.package_name(spec) == package


@pytest.mark.parametrize(
    "spec", ["6.12", "6.1-cloud", "6.1-rt", "", "foo", "6", "6.1.0-56-xen", "../6.1.0-56"]
)
def test_package_name_rejects(spec: str) -> None:
    with pytest.raises(KernelError, match=r"not a full Debian kernel version"):
        debian.package_name(spec)


# `apt-cache madison` of every linux-image-* package of the harness's apt state (bookworm,
# its updates, security and backports, trixie and its updates, security and backports),
# recorded 2026-12-04, and the archive's linux-binary-*/linux-modules-* names.
MADISON = (DATA / "apt-cache-madison-linux-image.txt").read_text()
SPLIT = (DATA / "apt-cache-pkgnames-linux-binary-modules.txt").read_text().split()
KERNELS = debian.available_from(aptstate.parse_madison(MADISON), SPLIT)


def test_parse_madison_recorded() -> None:
    pvs = aptstate.parse_madison(MADISON)
    assert len(pvs) > 200
    first = pvs[0]
    assert first.name.startswith("linux-image-") and first.suite in {s for _, s in aptstate.SUITES}
    assert (
        aptstate.PackageVersion("linux-image-7.3.4+deb13-amd64", "7.3.4-1~bpo13+1", "trixie-backports") in pvs
    )


def test_available_one_per_package_in_upstream_order() -> None:
    names = [k.package for k in KERNELS]
    assert len(names) == len(set(names))
    ups = [k.upstream for k in KERNELS]
    assert ups == sorted(ups)
    assert "linux-image-amd64" not in names and not any(n.endswith(("-dbg", "-unsigned")) for n in names)


@pytest.mark.parametrize(
    "spec,package,suite",
    [
        ("7.3", "linux-image-7.3.4+deb13-amd64", "trixie-backports"),
        ("7.3.4+deb13", "linux-image-7.3.4+deb13-amd64", "trixie-backports"),
        ("7.3-cloud", "linux-image-7.3.4+deb13-cloud-amd64", "trixie-backports"),
        ("6.1", "linux-image-6.1.0-57-amd64", "bookworm-security"),
        ("6.1.0-56", "linux-image-6.1.0-56-amd64", "bookworm-security"),
        ("6.1.192", "linux-image-6.1.0-57-amd64", "bookworm-security"),
        # 6.12.118 is built for bookworm (+deb12) and trixie (+deb13): the host's release wins.
        ("6.12", "linux-image-6.12.118+deb12-amd64", "bookworm-security"),
        ("6.12.118", "linux-image-6.12.118+deb12-amd64", "bookworm-security"),
        ("6.12.118+deb13", "linux-image-6.12.118+deb13-amd64", "trixie-security"),
        ("6.12.43+deb12", "linux-image-6.12.43+deb12-amd64", "bookworm-backports"),
        ("6.12.90+deb12.1", "linux-image-6.12.90+deb12.1-amd64", "bookworm-backports"),
        ("6.16", "linux-image-6.16.12+deb13-amd64", "trixie-backports"),
        ("6.19-amd64", "linux-image-6.19.14+deb13-amd64", "trixie-backports"),
        ("6.99", None, None),
    ],
)
def test_select_across_suites(spec: str, package: str | None, suite: str | None) -> None:
    if package is None:
        with pytest.raises(KernelError):
            debian.select(spec, KERNELS)
        return
    k = debian.select(spec, KERNELS)
    assert (k.package, k.suite) == (package, suite)


def test_select_prefers_the_host_release_only_on_a_tie() -> None:
    assert debian.select("6.12", KERNELS, host_deb=13).package == "linux-image-6.12.118+deb13-amd64"
    assert debian.select("7.3", KERNELS, host_deb=12).package == "linux-image-7.3.4+deb13-amd64"


@pytest.mark.parametrize(
    "spec,nearest",
    [
        ("7.4", "debian:7.2.12+deb13, debian:7.3.4+deb13"),
        ("6.13", "debian:6.1.0-57, debian:6.12.118+deb12, debian:6.16.12+deb13, debian:6.17.13+deb13"),
        ("6.12.119", "debian:6.12.117+deb13, debian:6.12.118+deb13, debian:6.12.118+deb12"),
    ],
)
def test_unknown_version_names_the_nearest(spec: str, nearest: str) -> None:
    with pytest.raises(KernelError) as e:
        debian.select(spec, KERNELS)
    assert str(e.value) == f"debian:{spec}: no such kernel package; nearest available: {nearest}"


@pytest.mark.parametrize("spec", ["latest", "6", "7.3.x", "6.1.0-56-xen"])
def test_select_rejects_what_is_no_spec(spec: str) -> None:
    with pytest.raises(KernelError, match="not a Debian kernel spec"):
        debian.select(spec, KERNELS)


def test_lines_newest_of_each_and_which_lack_modules() -> None:
    every = [k.spec for k in debian.lines(KERNELS, complete_only=False)]
    assert every == [
        "debian:6.1.0-57",
        "debian:6.12.118+deb12",
        "debian:6.16.12+deb13",
        "debian:6.17.13+deb13",
        "debian:6.18.15+deb13",
        "debian:6.19.14+deb13",
        "debian:7.0.13+deb13",
        "debian:7.1.13+deb13",
        "debian:7.2.12+deb13",
        "debian:7.3.4+deb13",
    ]
    missing = {k.line for k in KERNELS if not k.modules and not k.flavour}
    assert missing == {"6.19", "7.0", "7.1"}
    assert [k.line for k in debian.lines(KERNELS)] == ["6.1", "6.12", "6.16", "6.17", "6.18", "7.2", "7.3"]
    assert [k.line for k in debian.lines(KERNELS, flavour="cloud")][-1] == "7.3-cloud"


def test_upstream_of_debian_versions() -> None:
    assert debian.upstream_of("6.1.192-2") == (6, 1, 192)
    assert debian.upstream_of("7.3.4-1~bpo13+1") == (7, 3, 4)
    assert debian.upstream_of("6.12.118-1~deb12u1") == (6, 12, 118)


def test_parse_depends_of_a_split_meta_package() -> None:
    dep = (
        "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.3.4+deb13-amd64 "
        "(= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), "
        "linux-modules-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1)"
    )
    assert aptstate.parse_depends(dep) == [
        "dracut",
        "linux-base-7.3.4+deb13-amd64",
        "linux-binary-7.3.4+deb13-amd64",
        "linux-modules-7.3.4+deb13-amd64",
    ]


def test_sources_list_names_every_suite_and_the_keyring() -> None:
    text = aptstate.sources_list("http://mirror.example/")
    assert text.count("\n") == len(aptstate.SUITES) == 8
    assert "http://mirror.example/debian trixie-backports main" in text
    assert "http://mirror.example/debian-security bookworm-security main" in text
    assert all(line.startswith(f"deb [signed-by={aptstate.KEYRING}] ") for line in text.splitlines())


def test_options_never_point_at_etc_apt(tmp_path: Path) -> None:
    opts = aptstate.options(tmp_path)
    values = [o for o in opts if o != "-o"]
    assert "Dir::Etc::SourceParts=/dev/null" in values
    assert f"Dir::Etc::SourceList={tmp_path / 'sources.list'}" in values
    assert f"Dir::State::status={tmp_path / 'status'}" in values
    assert not any("/etc/apt" in v for v in values)


def _layout(root: Path, files: list[str]) -> None:
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("x")


def test_locate_classic_layout(tmp_path: Path) -> None:
    r = "6.18.15+deb13-amd64"
    _layout(tmp_path, [f"boot/vmlinuz-{r}", f"boot/config-{r}", f"lib/modules/{r}/kernel/fs/ext4/ext4.ko.xz"])
    assert debian._locate(tmp_path) == (r, f"boot/vmlinuz-{r}", f"boot/config-{r}", f"lib/modules/{r}")


def test_locate_split_layout(tmp_path: Path) -> None:
    r = "7.3.4+deb13-amd64"
    _layout(
        tmp_path,
        [
            f"usr/lib/modules/{r}/vmlinuz",
            f"usr/lib/modules/{r}/config",
            f"usr/lib/modules/{r}/kernel/fs/ext4/ext4.ko.xz",
        ],
    )
    assert debian._locate(tmp_path) == (
        r,
        f"usr/lib/modules/{r}/vmlinuz",
        f"usr/lib/modules/{r}/config",
        f"usr/lib/modules/{r}",
    )


def test_locate_split_layout_without_modules(tmp_path: Path) -> None:
    r = "7.1.13+deb13-amd64"
    _layout(
        tmp_path,
        [f"usr/lib/modules/{r}/vmlinuz", f"usr/lib/modules/{r}/config", f"usr/lib/modules/{r}/System.map"],
    )
    assert debian._locate(tmp_path)[3] is None


def test_locate_binary_package_alone(tmp_path: Path) -> None:
    r = "6.19.14+deb13-amd64"  # linux-binary-X only: linux-modules-X and linux-base-X missing
    _layout(tmp_path, [f"boot/vmlinuz-{r}", "usr/share/doc/linux-binary-x/changelog.gz"])
    assert debian._locate(tmp_path) == (r, f"boot/vmlinuz-{r}", f"boot/config-{r}", None)


def test_locate_refuses_what_is_not_a_kernel(tmp_path: Path) -> None:
    _layout(tmp_path, ["usr/share/doc/linux-image-x/changelog.gz"])
    with pytest.raises(KernelError, match="not a kernel image package"):
        debian._locate(tmp_path)


# --- resolve_package / cache, with apt and the cache dir replaced ---------------------------


def fake_cache(root: Path, package: str, version: str, release: str) -> None:
    d = root / "harness" / "kernels" / "debian" / package
    d.mkdir(parents=True)
    (d / "meta.json").write_text(json.dumps({"package": package, "version": version, "release": release}))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A cache of our own and an apt state that cannot be reached."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def unreachable(progress: object = None) -> None:
        raise KernelError("cannot reach the Debian archive for the harness's apt state: test")

    monkeypatch.setattr(aptstate, "update", unreachable)
    return tmp_path


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, offline: Path) -> list[str]:
    """An apt state that answers with the recorded lists; records the update calls."""
    updates: list[str] = []

    def update(progress: object = None) -> None:
        updates.append("update")
        (offline / "harness" / "apt").mkdir(parents=True, exist_ok=True)
        (offline / "harness" / "apt" / "updated").write_text("now")

    monkeypatch.setattr(aptstate, "update", update)
    monkeypatch.setattr(
        aptstate,
        "pkgnames",
        lambda prefix: [
            n for n in ([pv.name for pv in aptstate.parse_madison(MADISON)] + SPLIT) if n.startswith(prefix)
        ],
    )
    monkeypatch.setattr(
        aptstate,
        "madison",
        lambda names: [pv for pv in aptstate.parse_madison(MADISON) if pv.name in set(names)],
    )
    return updates


def test_resolve_package_full_spec_in_the_cache_needs_no_apt(offline: Path) -> None:
    fake_cache(offline, "linux-image-6.1.0-56-amd64", "6.1.192-2", "6.1.0-56-amd64")
    assert debian.resolve_package("6.1.0-56") == "linux-image-6.1.0-56-amd64"


def test_resolve_across_suites_updates_once_a_day(recorded: list[str]) -> None:
    assert debian.resolve_package("7.3") == "linux-image-7.3.4+deb13-amd64"
    assert debian.resolve_package("6.12-cloud") == "linux-image-6.12.118+deb12-cloud-amd64"
    assert recorded == ["update"]  # the second spec used the fresh lists (and the memo)


def test_unknown_spec_refreshes_stale_lists_once(recorded: list[str], offline: Path) -> None:
    debian.resolve_package("7.3")
    stamp = offline / "harness" / "apt" / "updated"
    os.utime(stamp, (time.time() - 7200, time.time() - 7200))
    with pytest.raises(KernelError, match="nearest available"):
        debian.resolve_package("7.4")
    assert recorded == ["update", "update"]


def test_resolve_package_falls_back_on_cache_offline(offline: Path) -> None:
    fake_cache(offline, "linux-image-6.1.0-50-amd64", "6.1.176-1", "6.1.0-50-amd64")
    fake_cache(offline, "linux-image-6.1.0-56-amd64", "6.1.192-2", "6.1.0-56-amd64")
    fake_cache(offline, "linux-image-6.12.117+deb12-amd64", "6.12.117-1~deb12u1", "6.12.117+deb12-amd64")
    (offline / "harness" / "kernels" / "debian" / "linux-image-6.1.0-99-amd64").mkdir()  # no meta.json
    assert debian.resolve_package("6.1") == "linux-image-6.1.0-56-amd64"
    assert debian.resolve_package("6.12") == "linux-image-6.12.117+deb12-amd64"


def test_resolve_package_unknown_line_offline(offline: Path) -> None:
    with pytest.raises(
        KernelError, match=r"debian:6\.99: cannot reach the Debian archive .*, and no kernel is cached"
    ):
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
