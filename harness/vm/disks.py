"""Scratch disks for a run, made on the host (mkfs under TCG would cost guest seconds).

vda: ext4, for the file-backed cases (a real block filesystem, not tmpfs or 9p).
vdb: swap, for the swapped-out memory types.
Sparse files in the run dir, deleted when the run ends: they are scratch, not artefacts.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness.errors import BuildError, ToolMissing

EXT4_MIB = 256
SWAP_MIB = 256


def _sparse(path: Path, size_mib: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size_mib * 1024 * 1024)


def _tool(name: str) -> str:
    found = shutil.which(name) or (f"/sbin/{name}" if Path(f"/sbin/{name}").exists() else None)
    if not found:
        raise ToolMissing(f"{name} not found: run ci/setup.sh (apt-get install e2fsprogs util-linux)")
    return found


def make(run_dir: Path) -> tuple[Path, Path]:
    ext4, swap = run_dir / "scratch-ext4.img", run_dir / "scratch-swap.img"
    _sparse(ext4, EXT4_MIB)
    _sparse(swap, SWAP_MIB)
    for argv in ([_tool("mkfs.ext4"), "-q", "-F", "-L", "harness", str(ext4)], [_tool("mkswap"), str(swap)]):
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"{Path(argv[0]).name} failed: {r.stderr.strip()[:200]}")
    return ext4, swap


def remove(run_dir: Path) -> None:
    for name in ("scratch-ext4.img", "scratch-swap.img"):
        (run_dir / name).unlink(missing_ok=True)
