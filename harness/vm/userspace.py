"""A guest userspace that travels: a pinned Debian /usr as a read-only squashfs image in the cache.

Locally the guest's python3 (the probes) and iproute2's `rdma` (the RDMA cases) come from the
host's own /usr over 9p by default. That cannot go to a lab: a LAVA worker shares nothing with
its DUT. `--userspace image` (and every LAVA job) gives the guest this image instead, as a
read-only virtio disk that guest/init mounts on /usr.

The image is a Debian bookworm root made with `debootstrap --variant=minbase` and the packages in
PACKAGES, of which only /usr goes into the squashfs (Debian 12 is usr-merged: the loader and
libraries are under /usr, and the initramfs's /lib64 and /lib/x86_64-linux-gnu point there).
It lives in $XDG_CACHE_HOME/harness/userspace/<key>/ keyed on the package list, the suite and
the mirror. Built once, it stays what it is (hermetic) while the archive moves on; its
manifest.json records the version of every package in it and the image's sha256, and a run's
fingerprint records those. `harness userspace --rebuild` makes a new one from today's archive.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.errors import BuildError, ToolMissing
from harness.kernels import aptstate
from harness.paths import cache_dir
from harness.vm import snapshot

Progress = Callable[[str], None]

SUITE = "bookworm"
# python3 for the probes (ctypes is in libpython3.11-stdlib, not in python3-minimal), iproute2
# for `rdma link add` (cow_rdma's soft-RoCE device), dropbear for the SSH transport.
PACKAGES = ("python3-minimal", "libpython3.11-stdlib", "iproute2", "dropbear-bin")
LAYOUT = 2  # bump when the way the image is made changes (what is left out, the compressor)
IMAGE_NAME = "usr.squashfs"
MANIFEST_NAME = "manifest.json"
# Not needed in a guest that runs tests: left out of the image (paths under the root's usr/).
# minbase's perl-base and glibc's iconv modules (gconv) are ~12 MB that nothing in the guest uses.
EXCLUDE = (
    "share/doc",
    "share/man",
    "share/info",
    "share/locale",
    "share/lintian",
    "share/i18n",
    "share/zoneinfo",
    "share/bash-completion",
    "share/perl5",
    "lib/x86_64-linux-gnu/perl-base",
    "share/common-licenses",
    "lib/x86_64-linux-gnu/gconv",
    "bin/perl",
    "bin/perl5.36.0",
)


@dataclass(frozen=True)
class Userspace:
    image: Path
    key: str
    packages: Mapping[str, str]  # every package in the root: name -> version
    sha256: str
    size_bytes: int
    build_s: float  # how long its build took (when it was built)
    cached: bool  # found in the cache, not built now

    def fingerprint(self) -> dict[str, object]:
        return {
            "kind": "image",
            "key": self.key,
            "image": str(self.image),
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "suite": SUITE,
            "asked": list(PACKAGES),
            "left_out": [f"/usr/{e}" for e in EXCLUDE],
            "packages": dict(self.packages),
        }


def key(packages: tuple[str, ...] = PACKAGES, suite: str = SUITE, mirror: str = "") -> str:
    """The cache key of an image (pure): what it is made of, and how."""
    text = json.dumps(
        {"packages": sorted(packages), "suite": suite, "mirror": mirror.rstrip("/"), "layout": LAYOUT},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_dpkg_status(text: str) -> dict[str, str]:
    """Installed packages and their versions from a dpkg status file (pure)."""
    out: dict[str, str] = {}
    for para in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in para.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            k, _, v = line.partition(":")
            fields[k.strip()] = v.strip()
        if "Package" in fields and fields.get("Status", "").endswith(" installed"):
            out[fields["Package"]] = fields.get("Version", "")
    return dict(sorted(out.items()))


def root() -> Path:
    return cache_dir() / "userspace"


def _tool(name: str, package: str) -> str:
    for cand in (shutil.which(name), f"/usr/sbin/{name}", f"/sbin/{name}"):
        if cand and Path(cand).is_file():
            return cand
    raise ToolMissing(f"{name} not found: run ci/setup.sh (apt-get install {package})")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # another run building the same image: wait for it
        yield


def _load(d: Path) -> Userspace | None:
    try:
        meta = json.loads((d / MANIFEST_NAME).read_text())
        img = d / IMAGE_NAME
        size = img.stat().st_size
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("size_bytes") != size:
        return None  # half-written or damaged: built again
    return Userspace(
        img,
        d.name,
        dict(meta.get("packages", {})),
        str(meta.get("sha256", "")),
        size,
        float(meta.get("build_s", 0.0)),
        True,
    )


def _run(argv: list[str], what: str, timeout_s: float) -> None:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what}: still running after {timeout_s:.0f}s") from None
    if r.returncode != 0:
        lines = (r.stderr.strip() or r.stdout.strip() or "no output").splitlines()
        raise BuildError(f"{what} failed (exit {r.returncode}): {lines[-1][:300]}")


def ensure(progress: Progress = lambda s: None, rebuild: bool = False) -> Userspace:
    """The image for PACKAGES: from the cache, or built now (a few minutes, once)."""
    mirror = aptstate.mirror()
    k = key(PACKAGES, SUITE, mirror)
    d = root() / k
    with _locked(root() / f".{k}.lock"):
        found = None if rebuild else _load(d)
        if found is not None:
            return found
        return _build(d, mirror, progress)


def _build(d: Path, mirror: str, progress: Progress) -> Userspace:
    if os.geteuid() != 0:
        raise BuildError(
            "building the guest userspace image needs root (debootstrap); "
            "build it once as root (harness userspace) or use --userspace host"
        )
    debootstrap = _tool("debootstrap", "debootstrap")
    mksquashfs = _tool("mksquashfs", "squashfs-tools")
    t0 = time.monotonic()
    tmp = d.parent / f".build-{d.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        rootfs = tmp / "root"
        progress(f"building the guest userspace image ({SUITE}: {', '.join(PACKAGES)}) from {mirror}")
        _run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                "--components=main",
                SUITE,
                str(rootfs),
                f"{mirror.rstrip('/')}/debian",
            ],
            "debootstrap",
            1800.0,
        )
        packages = parse_dpkg_status((rootfs / "var/lib/dpkg/status").read_text())
        missing = [p for p in PACKAGES if p not in packages]
        if missing:
            raise BuildError(f"debootstrap left out {', '.join(missing)}")
        img = tmp / IMAGE_NAME
        excl: list[str] = []
        for e in EXCLUDE:
            excl += ["-e", e]
        # Reproducible: fixed times and owners, no host uid in the image.
        _run(
            [
                mksquashfs,
                str(rootfs / "usr"),
                str(img),
                "-comp",
                "zstd",
                "-noappend",
                "-no-progress",
                "-all-root",
                "-mkfs-time",
                "0",
                "-all-time",
                "0",
                "-quiet",
                *excl,
            ],
            "mksquashfs",
            600.0,
        )
        size = img.stat().st_size
        build_s = round(time.monotonic() - t0, 1)
        meta = {
            "suite": SUITE,
            "mirror": mirror,
            "asked": list(PACKAGES),
            "layout": LAYOUT,
            "packages": packages,
            "sha256": snapshot._file_hash(img),
            "size_bytes": size,
            "build_s": build_s,
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / MANIFEST_NAME).write_text(json.dumps(meta, indent=1) + "\n")
        shutil.rmtree(rootfs)
        shutil.rmtree(d, ignore_errors=True)
        tmp.rename(d)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    progress(
        f"guest userspace image {d / IMAGE_NAME}: {size / 2**20:.1f} MiB, {len(packages)} packages, "
        f"built in {build_s:.0f}s"
    )
    found = _load(d)
    if found is None:
        raise BuildError(f"the userspace image in {d} cannot be read back")
    return Userspace(found.image, found.key, found.packages, found.sha256, found.size_bytes, build_s, False)


def add_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    u = sub.add_parser("userspace", help="build (once) or show the guest userspace image")
    u.add_argument("--rebuild", action="store_true", help="make a new one from today's archive")


def cmd_userspace(a: argparse.Namespace, progress: Progress) -> int:
    t0 = time.monotonic()
    us = ensure(progress, a.rebuild)
    how = "cached" if us.cached else f"built in {us.build_s:.0f}s"
    print(
        f"{us.image}  {us.size_bytes / 2**20:.1f} MiB, {len(us.packages)} packages, {how} "
        f"({time.monotonic() - t0:.1f}s); sha256 {us.sha256}"
    )
    return 0
