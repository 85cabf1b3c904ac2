"""Fragment merging and the "option dropped" error against a real kernel tree's Kconfig:
`make tinyconfig` + our fragments + `make olddefconfig`, no compile (~30 s).

Needs the Debian 6.12 source unpacked in the cache (ci/setup.sh runs
`harness source fetch debian:6.12`); skipped with the reason when it is not there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness import cli
from harness.kernels import kbuild, kconfig, sources
from tests.helpers.paths import REPO

KERNELS = REPO / "kernels"


@pytest.fixture(scope="module")
def tree() -> Path:
    t = sources.for_series(6, 12)
    if t is None:
        pytest.skip(
            "no Debian 6.12 source in the cache: run `harness source fetch debian:6.12` (ci/setup.sh does)"
        )
    for tool in ("make", "gcc", "flex", "bison"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not installed (ci/setup.sh installs the kernel build dependencies)")
    return t.root


def test_our_fragments_survive_olddefconfig_on_tinyconfig(tree: Path, tmp_path: Path) -> None:
    frags = (KERNELS / "lean.config", KERNELS / "cow.config")
    req = kbuild.BuildRequest(tree, frags, "tinyconfig", tmp_path / "b", 2)
    assert kbuild.configure(req, tmp_path / "b", lambda s: None)  # raises if an option was dropped
    final = kconfig.parse((tmp_path / "b" / ".config").read_text())
    for opt in (
        "CONFIG_GUP_TEST",
        "CONFIG_MEM_SOFT_DIRTY",
        "CONFIG_PTE_MARKER_UFFD_WP",
        "CONFIG_9P_FS",
        "CONFIG_NET_9P_VIRTIO",
        "CONFIG_VIRTIO_BLK",
        "CONFIG_ACPI",
        "CONFIG_SERIAL_8250_CONSOLE",
    ):
        assert final.get(opt) == "y", opt
    assert final.get("CONFIG_IPV6", "n") == "n"  # lean: IPv4 only (9p needs INET on 6.1)
    # unchanged inputs: the next configure is skipped (cheap rebuilds)
    assert not kbuild.configure(req, tmp_path / "b", lambda s: None)


def test_a_dropped_option_is_one_line_naming_the_missing_dependency(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.config"
    bad.write_text(
        "CONFIG_64BIT=y\nCONFIG_PROC_FS=y\n# CONFIG_CHECKPOINT_RESTORE is not set\nCONFIG_MEM_SOFT_DIRTY=y\n"
    )
    code = cli.main(
        ["build", "--src", str(tree), "--fragment", str(bad), "--out", str(tmp_path / "b"), "-j2"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("harness: error: CONFIG_MEM_SOFT_DIRTY=y (")
    assert "depends on CHECKPOINT_RESTORE && HAVE_ARCH_SOFT_DIRTY && PROC_FS (mm/Kconfig:" in err[-1]
    assert err[-1].endswith("not met: CHECKPOINT_RESTORE")
    assert not (tmp_path / "b" / "vmlinux").exists()  # stopped before compiling
