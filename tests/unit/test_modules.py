"""harness.modules: resolution against modules.dep/modules.builtin excerpts from Debian packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.kernels import modules
from harness.vm import image
from tests.helpers import paths

DATA = paths.DATA / "modules"
DEB61 = DATA / "debian-6.1.0-56-amd64"
DEB612 = DATA / "debian-6.12.117+deb12-amd64"


def load(d: Path) -> tuple[str, str]:
    return (d / "modules.dep").read_text(), (d / "modules.builtin").read_text()


def dep_map(modules_dep: str) -> dict[str, list[str]]:
    out = {}
    for line in modules_dep.splitlines():
        path, _, rest = line.partition(":")
        out[path] = rest.split()
    return out


def assert_deps_first(order: tuple[str, ...], modules_dep: str) -> None:
    deps = dep_map(modules_dep)
    pos = {p: i for i, p in enumerate(order)}
    assert len(pos) == len(order), f"duplicates in {order}"
    for p in order:
        for d in deps.get(p, []):
            assert d in pos, f"{p} needs {d}, which is not loaded"
            assert pos[d] < pos[p], f"{d} must load before {p}"


@pytest.mark.parametrize(
    "name,expected",
    [
        ("kernel/fs/9p/9p.ko.xz", "9p"),
        ("kernel/fs/9p/9p.ko", "9p"),
        ("kernel/arch/x86/crypto/crc32c-intel.ko", "crc32c_intel"),
        ("kernel/lib/foo.ko.zst", "foo"),
        ("kernel/lib/foo.ko.gz", "foo"),
        ("bar.ko", "bar"),
    ],
)
def test_module_name(name: str, expected: str) -> None:
    assert modules.module_name(name) == expected


def test_everything_image_asks_for_on_6_1() -> None:
    dep, builtin = load(DEB61)
    wanted = image.VIRTIO_MODULES + image.USR_MODULES + image.NET_MODULES + image.DISK_MODULES
    r = modules.resolve(wanted, dep, builtin)
    assert r.missing == () and r.builtin == ()
    assert_deps_first(r.load_order, dep)
    # Every line of the excerpt is needed (it was cut to exactly these modules and their deps).
    assert set(r.load_order) == set(dep_map(dep))
    assert (
        r.load_order.index("kernel/drivers/virtio/virtio_ring.ko")
        < r.load_order.index("kernel/drivers/virtio/virtio.ko")
        < r.load_order.index("kernel/drivers/virtio/virtio_pci.ko")
    )
    assert (
        r.load_order.index("kernel/fs/netfs/netfs.ko")
        < r.load_order.index("kernel/fs/fscache/fscache.ko")
        < r.load_order.index("kernel/fs/9p/9p.ko")
    )


def test_builtin_on_6_12_virtio_pci() -> None:
    dep, builtin = load(DEB612)
    r = modules.resolve(["virtio_pci", "virtio_blk", "9p", "9pnet_virtio"], dep, builtin)
    assert r.builtin == ("virtio_pci",)
    assert r.missing == ()
    assert r.load_order == (
        "kernel/drivers/block/virtio_blk.ko.xz",
        "kernel/fs/netfs/netfs.ko.xz",
        "kernel/net/9p/9pnet.ko.xz",
        "kernel/fs/9p/9p.ko.xz",
        "kernel/net/9p/9pnet_virtio.ko.xz",
    )
    assert_deps_first(r.load_order, dep)


def test_exact_order_follows_modules_dep_order() -> None:
    dep, builtin = load(DEB61)
    r = modules.resolve(["ext4"], dep, builtin)
    assert r.load_order == (
        "kernel/lib/crc16.ko",
        "kernel/fs/mbcache.ko",
        "kernel/fs/jbd2/jbd2.ko",
        "kernel/fs/ext4/ext4.ko",
    )


def test_shared_deps_loaded_once() -> None:
    dep, builtin = load(DEB61)
    r = modules.resolve(["virtio_blk", "virtio_net", "9pnet_virtio", "virtio_blk"], dep, builtin)
    assert r.load_order.count("kernel/drivers/virtio/virtio.ko") == 1
    assert r.load_order.count("kernel/drivers/block/virtio_blk.ko") == 1
    assert_deps_first(r.load_order, dep)


@pytest.mark.parametrize("wanted", ["crc32c_intel", "crc32c-intel"])
def test_dash_and_underscore_are_the_same(wanted: str) -> None:
    dep, builtin = load(DEB612)
    r = modules.resolve([wanted], dep, builtin)
    assert r.load_order == ("kernel/arch/x86/crypto/crc32c-intel.ko.xz",)


@pytest.mark.parametrize("wanted", ["amd_uncore", "amd-uncore"])
def test_builtin_with_dash_in_file_name(wanted: str) -> None:
    dep, builtin = load(DEB612)
    r = modules.resolve([wanted], dep, builtin)
    assert r.builtin == (wanted,)  # reported as the caller spelled it
    assert r.load_order == () and r.missing == ()


def test_missing_modules_are_reported_in_request_order() -> None:
    dep, builtin = load(DEB61)
    r = modules.resolve(["nosuch", "ext4", "virtio-gpu"], dep, builtin)
    assert r.missing == ("nosuch", "virtio-gpu")
    assert r.load_order[-1] == "kernel/fs/ext4/ext4.ko"


def test_empty_inputs() -> None:
    assert modules.resolve([], "", "") == modules.Resolution((), (), ())
    assert modules.resolve(["9p"], "", "") == modules.Resolution((), (), ("9p",))


def test_dep_not_listed_on_its_own_line_is_still_loaded() -> None:
    # A partial modules.dep (or one naming a dep depmod did not list): load it, do not crash.
    r = modules.resolve(["a"], "kernel/a.ko: kernel/b.ko\n", "")
    assert r.load_order == ("kernel/b.ko", "kernel/a.ko")


def test_dependency_cycle_terminates() -> None:
    r = modules.resolve(["a"], "kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n", "")
    assert sorted(r.load_order) == ["kernel/a.ko", "kernel/b.ko"]


def test_blank_and_junk_lines_are_ignored() -> None:
    r = modules.resolve(["a"], "\n# comment\nkernel/a.ko:\n\n", "\n")
    assert r.load_order == ("kernel/a.ko",)
