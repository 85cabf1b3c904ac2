"""harness.headers: the compiler a module for a kernel needs, and the path rewrite (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import BuildError
from harness.kernels import headers
from harness.model import Kernel, KernelVersion

TRIXIE_CC = "x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0"
BOOKWORM_CC = "x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"


def kernel(cc: str) -> Kernel:
    return Kernel(
        "debian:x",
        Path("/k"),
        "7.3.4+deb13-amd64",
        KernelVersion(7, 3, 4),
        None,
        {"CONFIG_CC_VERSION_TEXT": cc} if cc else {},
    )


@pytest.mark.parametrize(
    "text,major",
    [
        (TRIXIE_CC, 14),
        (BOOKWORM_CC, 12),
        ("gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0", 12),
        ("clang version 19.1.7", None),
        ("", None),
    ],
)
def test_gcc_major(text: str, major: int | None) -> None:
    assert headers.gcc_major(text) == major


def test_compiler_for_prefers_the_versioned_gcc() -> None:
    assert (
        headers.compiler_for(kernel(TRIXIE_CC), which=lambda t: "/usr/bin/gcc-14", host_major=12) == "gcc-14"
    )


def test_compiler_for_plain_gcc_of_the_same_major() -> None:
    assert headers.compiler_for(kernel(BOOKWORM_CC), which=lambda t: None, host_major=12) == "gcc"
    assert headers.compiler_for(kernel(""), which=lambda t: None, host_major=12) == "gcc"


def test_compiler_for_says_what_is_missing_in_one_line() -> None:
    with pytest.raises(BuildError) as e:
        headers.compiler_for(kernel(TRIXIE_CC), which=lambda t: None, host_major=12)
    assert str(e.value) == (
        "7.3.4+deb13-amd64 was built with gcc-14 and this host has gcc-12: "
        "a module cannot be built for it here"
    )


def test_rewrite_abs_paths() -> None:
    root = Path("/c/headers/7.3.4+deb13-amd64")
    text = (
        "include /usr/src/linux-headers-7.3.4+deb13-common/Makefile\n"
        "KBUILD=/usr/lib/linux-kbuild-7.3.4+deb13/scripts\n"
        "keep=/usr/lib/x86_64-linux-gnu /opt/usr/src/x\n"
    )
    assert headers.rewrite_abs_paths(text, root) == (
        f"include {root}/usr/src/linux-headers-7.3.4+deb13-common/Makefile\n"
        f"KBUILD={root}/usr/lib/linux-kbuild-7.3.4+deb13/scripts\n"
        "keep=/usr/lib/x86_64-linux-gnu /opt/usr/src/x\n"
    )
