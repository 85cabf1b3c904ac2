"""harness.userspace: the pinned guest userspace image (its key, the package versions it
records), the guest options that mount it, and a vm test that runs probes and RDMA cases on it
instead of the host's /usr."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_run import harness_run
from conftest import TEST_KERNEL
from harness import image, qemu, userspace

STATUS = """Package: python3-minimal
Status: install ok installed
Priority: optional
Version: 3.11.2-1+b1
Description: a minimal subset of the Python language
 continued: Version: 9.9 (a description line, not a field)

Package: removed-one
Status: deinstall ok config-files
Version: 1.0

Package: iproute2
Status: install ok installed
Version: 6.1.0-3
"""


def test_dpkg_status_gives_installed_packages_and_versions() -> None:
    assert userspace.parse_dpkg_status(STATUS) == {"iproute2": "6.1.0-3", "python3-minimal": "3.11.2-1+b1"}


def test_the_key_follows_the_package_list_suite_and_mirror() -> None:
    k = userspace.key(("a", "b"), "bookworm", "http://m")
    assert k == userspace.key(("b", "a"), "bookworm", "http://m/")  # order and a trailing / do not matter
    assert k != userspace.key(("a", "b", "c"), "bookworm", "http://m")
    assert k != userspace.key(("a", "b"), "trixie", "http://m")
    assert k != userspace.key(("a", "b"), "bookworm", "http://other")


def test_a_damaged_cache_entry_is_not_used(tmp_path: Path) -> None:
    d = tmp_path / "k1"
    d.mkdir()
    (d / userspace.IMAGE_NAME).write_bytes(b"x" * 10)
    (d / userspace.MANIFEST_NAME).write_text('{"size_bytes": 11, "packages": {}}')
    assert userspace._load(d) is None  # size differs: half-written
    (d / userspace.MANIFEST_NAME).write_text('{"size_bytes": 10, "packages": {"p": "1"}, "sha256": "ab"}')
    u = userspace._load(d)
    assert u is not None and u.cached and u.packages == {"p": "1"}
    assert u.fingerprint()["kind"] == "image" and u.fingerprint()["packages"] == {"p": "1"}


def test_the_guest_mounts_the_image_from_the_disk_after_the_scratch_disks() -> None:
    env = image._env_file(image.GuestOptions(nonce="n", share_usr=False, usr_image=True, disk=True)).decode()
    assert "HARNESS_USR=0\n" in env and "HARNESS_USR_IMAGE=1\n" in env and "HARNESS_USR_DEV=/dev/vdc\n" in env
    env = image._env_file(image.GuestOptions(nonce="n", share_usr=False, usr_image=True)).decode()
    assert "HARNESS_USR_DEV=/dev/vda\n" in env


def test_the_image_is_a_read_only_disk_after_the_others() -> None:
    spec = qemu.QemuSpec(qemu="q", kernel=Path("k"), initrd=Path("i"), cmdline="c", accel="tcg",
                         drives=(Path("/r/a.img"), Path("/r/b.img")), ro_drives=(Path("/c/usr.squashfs"),))
    argv = qemu.argv(spec)
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert [d.split(",")[0] for d in drives] == ["file=/r/a.img", "file=/r/b.img", "file=/c/usr.squashfs"]
    assert "readonly=on" in drives[2] and "readonly=on" not in drives[0]


@pytest.mark.vm
def test_probes_and_rdma_run_on_the_userspace_image(tmp_path: Path) -> None:
    """The probes' python3 and cow_rdma's `rdma` tool come from the image, not the host's /usr."""
    r = harness_run(tmp_path / "run", "--kernel", TEST_KERNEL, "--userspace", "image",
                    "--filter", "probe.pfnmap.*", "--filter", "cow.rdma-ro.*.base")
    assert r.rc == 0, r.stderr[-3000:]
    v = r.verdicts()
    assert len(v) == 7 and set(v.values()) == {"PASS"}, v
    fp = r.fingerprint()
    us = fp["userspace"]
    assert us["kind"] == "image" and Path(us["image"]).name == userspace.IMAGE_NAME
    assert us["packages"]["python3-minimal"] and us["packages"]["iproute2"]
    assert fp["guest"]["rdma"] == "rxe0"  # the soft-RoCE link was made with the image's rdma tool
    names = [Path(m).name.split(".")[0] for m in fp["machine"]["modules_loaded"]]
    assert "squashfs" in names and "9p" not in names
