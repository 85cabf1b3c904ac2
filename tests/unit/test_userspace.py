"""harness.vm.userspace: the pinned guest userspace image (its key, the package versions it
records), the guest options that mount it and the read-only disk it is (tests/vm/
test_vm_userspace.py boots it)."""

from __future__ import annotations

from pathlib import Path

from harness.vm import image, qemu, userspace

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
    spec = qemu.QemuSpec(
        qemu="q",
        kernel=Path("k"),
        initrd=Path("i"),
        cmdline="c",
        accel="tcg",
        drives=(Path("/r/a.img"), Path("/r/b.img")),
        ro_drives=(Path("/c/usr.squashfs"),),
    )
    argv = qemu.argv(spec)
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert [d.split(",")[0] for d in drives] == ["file=/r/a.img", "file=/r/b.img", "file=/c/usr.squashfs"]
    assert "readonly=on" in drives[2] and "readonly=on" not in drives[0]
