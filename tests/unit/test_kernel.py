"""harness.kernel: parse_config, and resolve() of files and trees built from synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.errors import HarnessError, KernelError
from harness.kernels import kernel
from harness.model import Kernel, KernelVersion
from tests.helpers.synthetic_bzimage import DEBIAN_61_BANNER, UPSTREAM_BANNER, make_bzimage

CONFIG = """\
#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.1.192 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"
CONFIG_X86_64=y
CONFIG_HZ_250=y
CONFIG_HZ=250
# CONFIG_GUP_TEST is not set
CONFIG_TRANSPARENT_HUGEPAGE=y
CONFIG_9P_FS=m
CONFIG_CMDLINE="console=ttyS0 root=/dev/vda"
CONFIG_EMPTY=""
CONFIG_CRLF=y\r
  CONFIG_INDENTED=y
CONFIG_NO_EQUALS
"""


def test_parse_config() -> None:
    c = kernel.parse_config(CONFIG)
    assert c == {
        "CONFIG_CC_VERSION_TEXT": "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0",
        "CONFIG_X86_64": "y",
        "CONFIG_HZ_250": "y",
        "CONFIG_HZ": "250",
        "CONFIG_TRANSPARENT_HUGEPAGE": "y",
        "CONFIG_9P_FS": "m",
        "CONFIG_CMDLINE": "console=ttyS0 root=/dev/vda",  # split at the first "=" only
        "CONFIG_EMPTY": "",
        "CONFIG_CRLF": "y",
    }
    assert "CONFIG_GUP_TEST" not in c  # "is not set" means absent


def test_parse_config_empty() -> None:
    assert kernel.parse_config("") == {}


# --- resolve() on synthetic kernels ---------------------------------------------------------


def debian_layout(root: Path, with_config: bool = True, with_modules_dep: bool = True) -> Path:
    """<root>/boot/vmlinuz-R (+ config-R) and <root>/lib/modules/R/modules.dep, as in a .deb."""
    rel = "6.1.0-56-amd64"
    (root / "boot").mkdir(parents=True)
    bz = root / "boot" / f"vmlinuz-{rel}"
    bz.write_bytes(make_bzimage(DEBIAN_61_BANNER))
    if with_config:
        (root / "boot" / f"config-{rel}").write_text(CONFIG)
    mods = root / "lib" / "modules" / rel
    mods.mkdir(parents=True)
    if with_modules_dep:
        (mods / "modules.dep").write_text("kernel/fs/9p/9p.ko:\n")
    return bz


def test_resolve_debian_layout_file(tmp_path: Path) -> None:
    bz = debian_layout(tmp_path)
    k = kernel.resolve(str(bz))
    assert k.bzimage == bz
    assert k.release == "6.1.0-56-amd64"
    assert k.version == KernelVersion(6, 1, 192)  # from "Debian 6.1.192-2", not from 6.1.0-56
    assert k.config["CONFIG_HZ"] == "250"
    assert k.config_path == tmp_path / "boot" / "config-6.1.0-56-amd64"
    assert k.modules_dir == tmp_path / "lib" / "modules" / "6.1.0-56-amd64"
    assert k.origin == f"bzimage:{bz}"
    assert k.spec == str(bz)


def test_resolve_file_without_config_or_modules(tmp_path: Path) -> None:
    bz = debian_layout(tmp_path, with_config=False, with_modules_dep=False)
    k = kernel.resolve(str(bz))
    assert k.config == {} and k.config_path is None
    assert k.modules_dir is None  # a modules dir without modules.dep is no use


def test_resolve_tree(tmp_path: Path) -> None:
    boot = tmp_path / "arch" / "x86" / "boot"
    boot.mkdir(parents=True)
    (boot / "bzImage").write_bytes(make_bzimage(UPSTREAM_BANNER))
    (tmp_path / ".config").write_text("CONFIG_GUP_TEST=y\n")
    (tmp_path / "include" / "config").mkdir(parents=True)
    (tmp_path / "include" / "config" / "kernel.release").write_text("6.18.0-rc3+\n")
    mods = tmp_path / ".harness-modules" / "lib" / "modules" / "6.18.0-rc3+"
    mods.mkdir(parents=True)
    (mods / "modules.dep").write_text("")
    k = kernel.resolve(str(tmp_path))
    assert k.release == "6.18.0-rc3+"
    assert k.version == KernelVersion(6, 18, 0)
    assert k.config == {"CONFIG_GUP_TEST": "y"}
    assert k.modules_dir == mods
    assert k.origin == f"tree:{tmp_path}"


def test_resolve_tree_bzimage_path_finds_tree_config(tmp_path: Path) -> None:
    boot = tmp_path / "arch" / "x86" / "boot"
    boot.mkdir(parents=True)
    (boot / "bzImage").write_bytes(make_bzimage(UPSTREAM_BANNER))
    (tmp_path / ".config").write_text("CONFIG_GUP_TEST=y\n")
    k = kernel.resolve(str(boot / "bzImage"))
    assert k.config == {"CONFIG_GUP_TEST": "y"}
    assert k.modules_dir is None


def test_resolve_unbuilt_tree(tmp_path: Path) -> None:
    with pytest.raises(KernelError, match="no arch/x86/boot/bzImage"):
        kernel.resolve(str(tmp_path))


def test_resolve_missing_path(tmp_path: Path) -> None:
    with pytest.raises(KernelError, match="no such kernel file or tree"):
        kernel.resolve(str(tmp_path / "nope"))


def test_resolve_not_a_bzimage(tmp_path: Path) -> None:
    f = tmp_path / "vmlinux"
    f.write_bytes(b"\x7fELF" + b"\0" * 4096)
    with pytest.raises(KernelError, match="not an x86 bzImage"):
        kernel.resolve(str(f))


def test_resolve_truncated(tmp_path: Path) -> None:
    f = tmp_path / "bz"
    f.write_bytes(make_bzimage()[:-100])
    with pytest.raises(KernelError, match="truncated"):
        kernel.resolve(str(f))


def test_resolve_unreadable(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    f = tmp_path / "bz"
    f.write_bytes(make_bzimage())
    f.chmod(0)
    with pytest.raises(KernelError, match="cannot read kernel"):
        kernel.resolve(str(f))


# --- the real Debian kernel (ci/setup.sh fetches it) ----------------------------------------


@pytest.fixture(scope="module")
def real_kernel() -> Kernel:
    spec = os.environ.get("HARNESS_TEST_KERNEL", "debian:6.12")
    try:
        return kernel.resolve(spec)
    except HarnessError as e:
        pytest.skip(f"{spec} not available ({e}); run ci/setup.sh")


def test_real_kernel(real_kernel: Kernel) -> None:
    assert real_kernel.bzimage.is_file()
    assert real_kernel.release.endswith("amd64")
    assert real_kernel.version.major >= 5
    assert real_kernel.config.get("CONFIG_X86_64") == "y"
    assert real_kernel.config_path is not None
    assert real_kernel.modules_dir is not None and (real_kernel.modules_dir / "modules.dep").is_file()
