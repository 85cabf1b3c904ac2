"""Kernel source trees: `harness source fetch debian:6.12` and `harness source list`.

Debian ships the kernel source as a package (linux-source-6.1, -6.12, -7.2, -7.3) holding one
tarball, /usr/src/linux-source-<series>.tar.xz. The package comes from the Debian archive, so a
fresh machine can build a real kernel with no network but the package registries. The tarball is
unpacked once into $XDG_CACHE_HOME/harness/sources/debian/<package>-<version>/ and reused.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InputError
from harness.kernels import aptstate
from harness.kernels.debian import upstream_of
from harness.model import Progress
from harness.paths import cache_dir

_SERIES = re.compile(r"^debian:(?P<series>\d+\.\d+)$")
_DONE = ".harness-unpacked"  # written last: a tree without it is a half-finished unpack


@dataclass(frozen=True)
class SourceTree:
    spec: str  # debian:6.12
    package: str  # linux-source-6.12
    version: str  # the package version, 6.12.117-1~deb12u1
    root: Path  # the unpacked tree (has Makefile, Kconfig, mm/, tools/...)


def sources_cache() -> Path:
    return cache_dir() / "sources"


def package_for(spec: str) -> str:
    m = _SERIES.match(spec)
    if m is None:
        raise InputError(
            f"{spec}: not a source spec (expected debian:SERIES, e.g. debian:6.12 or debian:6.1)"
        )
    return f"linux-source-{m.group('series')}"


def _installed_version(package: str) -> str:
    r = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status} ${Version}", package], capture_output=True, text=True
    )
    if r.returncode != 0 or not r.stdout.startswith("install ok installed"):
        return ""
    return r.stdout.split()[-1]


def _tarball(package: str) -> Path:
    series = package.removeprefix("linux-source-")
    tar = Path("/usr/src") / f"linux-source-{series}.tar.xz"
    if not tar.is_file():
        raise InputError(f"{package} is installed but {tar} is missing")
    return tar


def _unpack(tar: Path, dest: Path, version: str, progress: Progress) -> Path:
    """Unpack into dest (the tarball holds one top directory); return the tree."""
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    progress(f"unpacking {tar} into {dest} (about a minute)")
    # tar(1) with xz is much faster than Python's tarfile over lzma.
    if shutil.which("tar"):
        r = subprocess.run(["tar", "-C", str(tmp), "-xf", str(tar)], capture_output=True, text=True)
        if r.returncode != 0:
            raise InputError(f"unpacking {tar} failed: {r.stderr.strip()[-200:]}")
    else:
        with tarfile.open(tar) as tf:
            tf.extractall(tmp, filter="data")
    tops = [p for p in tmp.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise InputError(f"{tar}: expected one top directory, found {len(tops)}")
    shutil.rmtree(dest, ignore_errors=True)
    tops[0].rename(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    (dest / _DONE).write_text(f"{version}\n")
    return dest


def _dest(package: str, version: str) -> Path:
    # No "~" (or ":") in the path: make and kbuild's path checks are not fond of them.
    return sources_cache() / "debian" / re.sub(r"[^A-Za-z0-9.+_-]", "_", f"{package}-{version}")


def _from_apt_state(package: str, progress: Progress) -> SourceTree | None:
    """Download the newest `package` from the harness's apt state (every suite: 7.2 and 7.3 are
    in trixie-backports), and unpack its tarball; None if no suite has it."""
    aptstate.ensure_fresh(progress)
    versions = [pv for pv in aptstate.madison([package]) if pv.name == package]
    if not versions:
        return None
    version = max(versions, key=lambda pv: (upstream_of(pv.version), pv.version)).version
    dest = _dest(package, version)
    if not (dest / _DONE).is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as tmp:
            deb = aptstate.download([f"{package}={version}"], Path(tmp), progress)[f"{package}={version}"]
            progress(f"unpacking {deb.name}")
            subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "root")], check=True)
            tars = sorted((Path(tmp) / "root" / "usr" / "src").glob("linux-source-*.tar.*"))
            if not tars:
                raise InputError(f"{deb.name}: no /usr/src/linux-source-*.tar.* in it")
            _unpack(tars[0], dest, version, progress)
    return SourceTree("", package, version, dest)


def fetch(spec: str, progress: Progress = lambda s: None) -> SourceTree:
    """The unpacked tree of a kernel line (once per version, in the cache): from the installed
    linux-source package when the host has it, else downloaded through the harness's own apt
    state (the host's apt is not changed)."""
    package = package_for(spec)
    version = _installed_version(package)
    if version:
        dest = _dest(package, version)
        if not (dest / _DONE).is_file():
            _unpack(_tarball(package), dest, version, progress)
        return SourceTree(spec, package, version, dest)
    tree = _from_apt_state(package, progress)
    if tree is None:
        raise InputError(
            f"{spec}: no {package} package in the Debian suites the harness knows "
            "(linux-source-6.1, -6.12, -7.2 and -7.3 are there as of 2026-12)"
        )
    return SourceTree(spec, package, tree.version, tree.root)


def cached() -> list[SourceTree]:
    """Trees already unpacked in the cache, newest version last within a series."""
    out = []
    base = sources_cache() / "debian"
    for d in sorted(base.glob("linux-source-*")) if base.is_dir() else []:
        if not (d / _DONE).is_file():
            continue
        m = re.match(r"^(linux-source-(\d+\.\d+))-", d.name)
        if m:
            version = (d / _DONE).read_text().strip()
            out.append(SourceTree(f"debian:{m.group(2)}", m.group(1), version, d))
    return out


def for_series(major: int, minor: int) -> SourceTree | None:
    """The cached Debian tree of a kernel series (for kselftests against a Debian kernel)."""
    found = [t for t in cached() if t.spec == f"debian:{major}.{minor}"]
    return found[-1] if found else None
