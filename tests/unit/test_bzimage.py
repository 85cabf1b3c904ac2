"""harness.bzimage: the boot header check and version banner, on synthetic images."""

from __future__ import annotations

import pytest

from harness.errors import KernelError
from harness.judge.expect import parse_version
from harness.kernels import bzimage
from harness.model import KernelVersion
from tests.helpers.synthetic_bzimage import DEBIAN_61_BANNER, UPSTREAM_BANNER, make_bzimage


def test_reads_banner_release_and_size() -> None:
    data = make_bzimage(setup_sects=4, payload_paragraphs=100)
    info = bzimage.inspect(data)
    assert info.banner == DEBIAN_61_BANNER
    assert info.release == "6.1.0-56-amd64"
    assert info.expected_size == 5 * 512 + 100 * 16 == len(data)


def test_setup_sects_zero_means_four() -> None:
    data = make_bzimage(setup_sects=0, payload_paragraphs=10)
    assert bzimage.inspect(data).expected_size == 5 * 512 + 160


def test_trailing_bytes_are_fine() -> None:
    # Debian's signed images carry a signature after the size the header promises.
    data = make_bzimage() + b"\xff" * 4096
    assert bzimage.inspect(data).release == "6.1.0-56-amd64"


@pytest.mark.parametrize("cut", [1, 16, 1000])
def test_truncated_image(cut: int) -> None:
    data = make_bzimage(payload_paragraphs=128)
    with pytest.raises(KernelError, match=r"vmlinuz-x: truncated bzImage \(\d+ bytes, header promises \d+\)"):
        bzimage.inspect(data[:-cut], "vmlinuz-x")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"#!/bin/sh\necho hello\n",
        b"\x7fELF" + b"\0" * 0x1000,  # a vmlinux, not a bzImage
        b"\0" * 0x1000,
        make_bzimage()[:0x3FF],  # too short to hold the header at all
    ],
    ids=["empty", "script", "elf", "zeros", "header-cut"],
)
def test_not_a_bzimage(data: bytes) -> None:
    with pytest.raises(KernelError, match=r"^img: not an x86 bzImage"):
        bzimage.inspect(data, "img")


def test_no_version_string() -> None:
    with pytest.raises(KernelError, match="no version string"):
        bzimage.inspect(make_bzimage(banner=""), "k")


def test_kernel_version_pointer_zero_means_no_version_string() -> None:
    # boot.rst: kernel_version is only meaningful "if set to a nonzero value". Offset 0 would
    # point at the jmp at 0x200 and read garbage as the release.
    with pytest.raises(KernelError, match="no version string"):
        bzimage.inspect(make_bzimage(banner=None), "k")


def test_version_pointer_past_the_end() -> None:
    data = bytearray(make_bzimage())
    data[0x20E:0x210] = (0xFFF0).to_bytes(2, "little")
    with pytest.raises(KernelError, match="no version string"):
        bzimage.inspect(bytes(data), "k")


def test_debian_banner_upstream_version() -> None:
    assert bzimage.upstream_version_text(DEBIAN_61_BANNER) == "6.1.192"
    assert parse_version(bzimage.upstream_version_text(DEBIAN_61_BANNER)) == KernelVersion(6, 1, 192)


@pytest.mark.parametrize(
    "banner,text,version",
    [
        (
            "6.12.117+deb12-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC "
            "Debian 6.12.117-1~deb12u1 (2026-11-14)",
            "6.12.117",
            (6, 12, 117),
        ),
        (
            "6.12.12+bpo-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC "
            "Debian 6.12.12-1~bpo12+1 (2025-02-23)",
            "6.12.12",
            (6, 12, 12),
        ),
        (UPSTREAM_BANNER, "6.18.0-rc3+", (6, 18, 0)),
        ("6.6.58", "6.6.58", (6, 6, 58)),
    ],
)
def test_upstream_version_text(banner: str, text: str, version: tuple[int, int, int]) -> None:
    assert bzimage.upstream_version_text(banner) == text
    assert parse_version(text).as_tuple() == version


def test_upstream_banner_release_is_first_word() -> None:
    info = bzimage.inspect(make_bzimage(banner=UPSTREAM_BANNER))
    assert info.release == "6.18.0-rc3+"
