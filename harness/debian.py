"""Debian kernel packages: spec → package name, apt-get download, unpack into the cache.

A spec is what stands between `linux-image-` and `-amd64` in the package name:
`6.1.0-56`, `6.12.117+deb12`, `6.12.117+deb12-cloud`; a bare series (`6.12`, `6.1-cloud`)
means the newest package of that series apt knows about (or, offline, the newest cached one).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import KernelError, ToolMissing
from .paths import kernels_cache

_SERIES = re.compile(r"^(\d+\.\d+)(-cloud|-rt)?$")
_FULL = re.compile(r"^(\d+\.\d+[.\d]*(?:-\d+)?(?:\+deb\d+)?)(-cloud|-rt)?$")
_PKG = re.compile(r"^linux-image-(\d+\.\d+[^ ]*?)-(cloud-|rt-)?amd64$")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DebianKernel:
    package: str
    version: str  # Debian package version, e.g. 6.12.117-1~deb12u1
    root: Path  # unpacked package: boot/, lib/modules/<release>/
    release: str

    @property
    def bzimage(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.release}"

    @property
    def config_path(self) -> Path:
        return self.root / "boot" / f"config-{self.release}"

    @property
    def modules_dir(self) -> Path:
        return self.root / "lib" / "modules" / self.release


def package_name(spec: str) -> str:
    """`6.1.0-56` → linux-image-6.1.0-56-amd64; `6.12.117+deb12-cloud` → …-cloud-amd64.

    The `uname -r` form (`6.1.0-56-amd64`, `6.12.117+deb12-cloud-amd64`) is accepted too."""
    spec = spec.removesuffix("-amd64")
    m = _FULL.match(spec)
    if not m or _SERIES.match(spec):
        raise KernelError(f"debian:{spec}: not a full Debian kernel version (e.g. 6.1.0-56)")
    flavour = (m.group(2) or "").lstrip("-")
    return f"linux-image-{m.group(1)}-{flavour + '-' if flavour else ''}amd64"


def _version_key(pkg: str) -> tuple[int, ...]:
    m = _PKG.match(pkg)
    nums = re.findall(r"\d+", m.group(1) if m else pkg)
    return tuple(int(n) for n in nums)


def newest_in_series(series: str, flavour: str, candidates: list[str]) -> str | None:
    """Pick the newest `linux-image-<series>.*-[flavour-]amd64` among package names (pure)."""
    want_flavour = f"{flavour}-" if flavour else None
    best: str | None = None
    for pkg in candidates:
        m = _PKG.match(pkg)
        if not m or (m.group(2) or None) != want_flavour:
            continue
        ver = m.group(1)
        if not (ver.startswith(series + ".") or ver.startswith(series + "-")):
            continue
        if ver == series:  # meta-package linux-image-6.12-amd64
            continue
        if best is None or _version_key(pkg) > _version_key(best):
            best = pkg
    return best


_APT_LISTS = Path("/var/lib/apt/lists")


def _apt_names(prefix: str) -> list[str]:
    """Package names apt knows with this prefix; memoised until `apt-get update` changes the lists
    (asking apt-cache costs ~0.7 s, which every run would pay for a bare series like 6.12)."""
    if not shutil.which("apt-cache"):
        return []
    try:
        stamp = str(max((p.stat().st_mtime_ns for p in _APT_LISTS.iterdir()), default=0))
    except OSError:
        stamp = ""
    memo = kernels_cache() / "apt-names.json"
    try:
        saved = json.loads(memo.read_text())
        if stamp and saved.get("stamp") == stamp and prefix in saved.get("names", {}):
            return list(saved["names"][prefix])
    except (OSError, ValueError):
        saved = {}
    out = subprocess.run(["apt-cache", "pkgnames", prefix], capture_output=True, text=True)
    names = out.stdout.split()
    if stamp and names:
        keep = saved.get("names", {}) if saved.get("stamp") == stamp else {}
        keep[prefix] = names
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps({"stamp": stamp, "names": keep}))
    return names


def cached_packages() -> list[str]:
    base = kernels_cache() / "debian"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "meta.json").is_file())


def resolve_package(spec: str) -> str:
    """Turn a debian: spec into a concrete package name."""
    m = _SERIES.match(spec)
    if not m:
        return package_name(spec)
    series, flavour = m.group(1), (m.group(2) or "").lstrip("-")
    pick = newest_in_series(series, flavour, _apt_names(f"linux-image-{series}"))
    if pick is None:  # offline, or apt lists not updated: fall back on what we have
        pick = newest_in_series(series, flavour, cached_packages())
    if pick is None:
        raise KernelError(
            f"debian:{spec}: no linux-image-{series}.* package known to apt or in the cache "
            "(run 'apt-get update'?)"
        )
    return pick


def load_cached(package: str) -> DebianKernel | None:
    meta = kernels_cache() / "debian" / package / "meta.json"
    if not meta.is_file():
        return None
    d = json.loads(meta.read_text())
    return DebianKernel(package, d["version"], meta.parent, d["release"])


def fetch(package: str, progress: Progress = lambda s: None) -> DebianKernel:
    """Download and unpack `package` into the cache (reused when already there)."""
    hit = load_cached(package)
    if hit is not None:
        return hit
    for tool in ("apt-get", "dpkg-deb", "depmod"):
        if not shutil.which(tool):
            raise ToolMissing(f"{tool} not found: run ci/setup.sh (or apt-get install kmod dpkg apt)")
    dest = kernels_cache() / "debian" / package
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as tmp:
        progress(f"downloading {package} with apt-get")
        r = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("*.deb"))
        if r.returncode != 0 or not debs:
            err = (r.stderr.strip().splitlines() or ["no .deb produced"])[-1]
            raise KernelError(f"debian: cannot download {package}: {err}")
        deb = debs[0]
        version = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        root = Path(tmp) / "root"
        progress(f"unpacking {deb.name}")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        releases = [p.name for p in (root / "lib" / "modules").iterdir()]
        if len(releases) != 1:
            raise KernelError(f"{package}: expected one lib/modules/<release>, found {releases}")
        release = releases[0]
        # The package ships no modules.dep; depmod builds it from the .ko files.
        subprocess.run(["depmod", "-b", str(root), release], check=True, capture_output=True)
        (root / "meta.json").write_text(
            json.dumps({"package": package, "version": version, "release": release}) + "\n"
        )
        root.rename(dest)
    hit = load_cached(package)
    assert hit is not None
    return hit
