"""Kernel source trees: `harness source fetch debian:6.12` and `harness source list`.

Debian ships the kernel source as a package (linux-source-6.12, linux-source-6.1) holding one
tarball, /usr/src/linux-source-<series>.tar.xz. The package comes from the Debian archive, so a
fresh machine can build a real kernel with no network but the package registries. The tarball is
unpacked once into $XDG_CACHE_HOME/harness/sources/debian/<package>-<version>/ and reused.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import InputError, ToolMissing
from .paths import cache_dir

Progress = Callable[[str], None]
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
        raise InputError(f"{spec}: not a source spec (expected debian:SERIES, e.g. debian:6.12 or debian:6.1)")
    return f"linux-source-{m.group('series')}"


def _installed_version(package: str) -> str:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", package],
                       capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.startswith("install ok installed"):
        return ""
    return r.stdout.split()[-1]


def _install(package: str, progress: Progress) -> None:
    if not shutil.which("apt-get"):
        raise ToolMissing("apt-get not found: `harness source fetch` needs a Debian system")
    progress(f"installing {package} (apt-get install)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0 and "Unable to locate package" in r.stderr:
        subprocess.run([*sudo, "apt-get", "update", "-qq"], capture_output=True, env=env)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise InputError(f"apt-get install {package} failed: {last}")


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


def fetch(spec: str, progress: Progress = lambda s: None) -> SourceTree:
    """Install the source package if needed and unpack it into the cache (once per version)."""
    package = package_for(spec)
    version = _installed_version(package)
    if not version:
        _install(package, progress)
        version = _installed_version(package)
        if not version:
            raise InputError(f"{package}: apt-get said it installed it, dpkg does not know it")
    # No "~" (or ":") in the path: make and kbuild's path checks are not fond of them.
    dest = sources_cache() / "debian" / re.sub(r"[^A-Za-z0-9.+_-]", "_", f"{package}-{version}")
    if not (dest / _DONE).is_file():
        _unpack(_tarball(package), dest, version, progress)
    return SourceTree(spec, package, version, dest)


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
