"""Debian kernel packages: spec → package, download through the harness's apt state, unpack.

A spec is what stands between `linux-image-` and `-amd64` in a package name
(`6.1.0-56`, `6.12.117+deb12`, `7.3.4+deb13-cloud`), an upstream version (`6.12.118`: the
package of that version, the host's Debian release first), or a line (`7.3`, `6.1-cloud`): the
newest package of that line in any suite the harness's apt state knows (aptstate.SUITES).

Packages are ordered by the *upstream* version their Debian version carries (6.1.0-56 is
6.1.192-2, so it sorts by 6.1.192), which is what makes one order across bookworm, its
backports and trixie-backports.

Two package layouts exist on the line:
- up to 6.18: linux-image-X holds boot/vmlinuz-X, boot/config-X and lib/modules/X;
- from 6.19: linux-image-X is a small meta package depending on linux-binary-X (vmlinuz),
  linux-modules-X and linux-base-X; the image, config and System.map are in
  usr/lib/modules/X/. Some of those packages are missing from the archive (6.19, 7.0, 7.1 have
  linux-binary-X only): such a kernel is kept without modules and says so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import KernelError, ToolMissing
from harness.kernels import aptstate
from harness.model import Progress
from harness.paths import kernels_cache

_ABI = r"\d+\.\d+\.\d+(?:-\d+|\+deb\d+(?:\.\d+)?)"
_PKG = re.compile(rf"^linux-image-(?P<abi>{_ABI})-(?:(?P<flavour>cloud|rt)-)?amd64$")
_LINE = re.compile(r"^(?P<line>\d+\.\d+)(?:-(?P<flavour>cloud|rt))?$")
_UPSTREAM = re.compile(r"^(?P<up>\d+\.\d+\.\d+)(?:-(?P<flavour>cloud|rt))?$")
_FULL = re.compile(rf"^(?P<abi>{_ABI})(?:-(?P<flavour>cloud|rt))?$")


def _host_debian_release(os_release: Path = Path("/etc/os-release"), default: int = 12) -> int:
    """The host's Debian major release (VERSION_ID), 12 when it cannot be told."""
    try:
        m = re.search(r'^VERSION_ID="?(\d+)', os_release.read_text(), re.M)
    except OSError:
        return default
    return int(m.group(1)) if m else default


# Debian's kernels for the host's release carry +debN of it; on a tie the host's build wins
# (its compiler is the host's, which is what building a module against it needs).
HOST_DEB = _host_debian_release()


@dataclass(frozen=True)
class AvailableKernel:
    """A kernel image package the apt state (or the cache) can give."""

    package: str  # linux-image-7.3.4+deb13-amd64
    abi: str  # 7.3.4+deb13, 6.1.0-56
    flavour: str  # "", "cloud", "rt"
    deb_version: str  # 7.3.4-1~bpo13+1, 6.1.192-2
    suite: str  # trixie-backports, bookworm-security, "cache"
    # False when the archive has the kernel's linux-binary-X but not its linux-modules-X
    # (6.19, 7.0, 7.1 as of 2026-12): it boots without modules (no virtio disks, no 9p).
    modules: bool = True

    @property
    def upstream(self) -> tuple[int, int, int]:
        return upstream_of(self.deb_version)

    @property
    def line(self) -> str:
        """`7.3`, `6.1-cloud`: what `debian:LINE` names."""
        up = self.upstream
        return f"{up[0]}.{up[1]}" + (f"-{self.flavour}" if self.flavour else "")

    @property
    def spec(self) -> str:
        return "debian:" + self.abi + (f"-{self.flavour}" if self.flavour else "")

    def key(self, host_deb: int = HOST_DEB) -> tuple[tuple[int, int, int], int, tuple[int, ...]]:
        deb = re.search(r"\+deb(\d+)", self.abi)
        return (
            self.upstream,
            int(bool(deb and int(deb.group(1)) == host_deb)),
            tuple(int(n) for n in re.findall(r"\d+", self.abi)),
        )


def upstream_of(deb_version: str) -> tuple[int, int, int]:
    """`6.1.192-2` → (6, 1, 192); `7.3.4-1~bpo13+1` → (7, 3, 4); `6.12.118-1~deb12u1` → …"""
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", deb_version)
    if not m:
        return (0, 0, 0)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def parse_image_name(package: str) -> tuple[str, str] | None:
    """linux-image-7.3.4+deb13-cloud-amd64 → ("7.3.4+deb13", "cloud"); None for meta packages
    (linux-image-amd64, linux-image-6.12-amd64), -dbg, -unsigned and templates (pure)."""
    m = _PKG.match(package)
    return (m["abi"], m["flavour"] or "") if m else None


def package_name(spec: str) -> str:
    """`6.1.0-56` → linux-image-6.1.0-56-amd64; `6.12.117+deb12-cloud` → …-cloud-amd64.

    The `uname -r` form (`6.1.0-56-amd64`, `6.12.117+deb12-cloud-amd64`) is accepted too."""
    spec = spec.removesuffix("-amd64")
    m = _FULL.match(spec)
    if not m:
        raise KernelError(f"debian:{spec}: not a full Debian kernel version (e.g. 6.1.0-56, 7.3.4+deb13)")
    flavour = m["flavour"] or ""
    return f"linux-image-{m['abi']}-{flavour + '-' if flavour else ''}amd64"


def available_from(
    versions: Iterable[aptstate.PackageVersion], other_names: Iterable[str] = ()
) -> list[AvailableKernel]:
    """One AvailableKernel per image package (its newest version), in upstream order (pure).

    other_names: the archive's linux-binary-* and linux-modules-* package names, to tell a
    split kernel whose modules package is missing."""
    others = set(other_names)
    best: dict[str, AvailableKernel] = {}
    for pv in versions:
        parsed = parse_image_name(pv.name)
        if parsed is None:
            continue
        rest = pv.name.removeprefix("linux-image-")
        modules = not (f"linux-binary-{rest}" in others and f"linux-modules-{rest}" not in others)
        k = AvailableKernel(pv.name, parsed[0], parsed[1], pv.version, pv.suite, modules)
        old = best.get(pv.name)
        if old is None or upstream_of(k.deb_version) > upstream_of(old.deb_version):
            best[pv.name] = k
    return sorted(best.values(), key=lambda k: k.key())


def _nearest(want: tuple[int, ...], flavour: str, kernels: list[AvailableKernel]) -> str:
    """What to offer instead of a version that is not there: in its own line, the nearest
    patch levels; otherwise the newest package of the lines on either side (pure)."""
    same = [k for k in kernels if k.flavour == flavour] or kernels
    line = [k for k in same if k.upstream[:2] == tuple(want[:2])]
    if line:
        near = sorted(line, key=lambda k: abs(k.upstream[2] - (want[2] if len(want) > 2 else 0)))[:3]
    else:
        newest = lines(same, flavour=None, complete_only=False)
        below = [k for k in newest if k.upstream[:2] < tuple(want[:2])][-2:]
        above = [k for k in newest if k.upstream[:2] > tuple(want[:2])][:2]
        near = below + above
    return ", ".join(k.spec for k in sorted(near, key=lambda k: k.key()))


def select(spec: str, kernels: list[AvailableKernel], host_deb: int = HOST_DEB) -> AvailableKernel:
    """The package a spec (without `debian:`) names among kernels (pure). Unknown → KernelError
    naming the nearest available ones."""
    spec = spec.removesuffix("-amd64")
    m_line, m_up, m_full = _LINE.match(spec), _UPSTREAM.match(spec), _FULL.match(spec)
    if m_full:
        pkg = package_name(spec)
        hits = [k for k in kernels if k.package == pkg]
        want = tuple(int(n) for n in re.findall(r"\d+", m_full["abi"])[:3])
        if "-" in m_full["abi"]:  # 6.1.0-N names no patch level: offer the newest of the line
            want = want[:2] + (10**6,)
        flavour = m_full["flavour"] or ""
    elif m_up:
        want = tuple(int(n) for n in m_up["up"].split("."))
        flavour = m_up["flavour"] or ""
        hits = [k for k in kernels if k.flavour == flavour and k.upstream == want]
    elif m_line:
        want = tuple(int(n) for n in m_line["line"].split("."))
        flavour = m_line["flavour"] or ""
        hits = [k for k in kernels if k.flavour == flavour and k.upstream[:2] == want]
    else:
        raise KernelError(
            f"debian:{spec}: not a Debian kernel spec (a line like 7.3, a version like "
            "6.12.118, or a package version like 6.1.0-56 or 7.3.4+deb13)"
        )
    if hits:
        return max(hits, key=lambda k: k.key(host_deb))
    if not kernels:
        raise KernelError(
            f"debian:{spec}: no Debian kernel packages known (apt lists empty and nothing cached)"
        )
    raise KernelError(
        f"debian:{spec}: no such kernel package; nearest available: {_nearest(want, flavour, kernels)}"
    )


# ---- the cache ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DebianKernel:
    package: str
    version: str  # Debian package version, e.g. 6.12.117-1~deb12u1
    root: Path  # the unpacked packages
    release: str
    vmlinuz_rel: str = ""  # relative to root; "" = the classic boot/vmlinuz-<release>
    config_rel: str = ""
    modules_rel: str | None = ""  # None = no modules could be had
    suite: str = ""
    missing: tuple[str, ...] = field(default_factory=tuple)  # packages the archive could not serve

    @property
    def bzimage(self) -> Path:
        return self.root / (self.vmlinuz_rel or f"boot/vmlinuz-{self.release}")

    @property
    def config_path(self) -> Path:
        return self.root / (self.config_rel or f"boot/config-{self.release}")

    @property
    def modules_dir(self) -> Path | None:
        if self.modules_rel is None:
            return None
        return self.root / (self.modules_rel or f"lib/modules/{self.release}")


def _cache_base() -> Path:
    return kernels_cache() / "debian"


def cached_packages() -> list[str]:
    base = _cache_base()
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "meta.json").is_file())


def load_cached(package: str) -> DebianKernel | None:
    meta = _cache_base() / package / "meta.json"
    if not meta.is_file():
        return None
    d = json.loads(meta.read_text())
    return DebianKernel(
        package,
        d["version"],
        meta.parent,
        d["release"],
        d.get("vmlinuz", ""),
        d.get("config", ""),
        d.get("modules", ""),
        d.get("suite", ""),
        tuple(d.get("missing", ())),
    )


def cached_kernels() -> list[AvailableKernel]:
    out = []
    for pkg in cached_packages():
        dk = load_cached(pkg)
        parsed = parse_image_name(pkg)
        if dk is not None and parsed is not None:
            out.append(
                AvailableKernel(
                    pkg,
                    parsed[0],
                    parsed[1],
                    dk.version,
                    dk.suite or "cache",
                    modules=dk.modules_dir is not None,
                )
            )
    return sorted(out, key=lambda k: k.key())


# ---- what the archive offers ----------------------------------------------------------------


def _memo() -> Path:
    return aptstate.root() / "kernels.json"


def available(progress: Progress = lambda s: None, refresh: bool = False) -> list[AvailableKernel]:
    """Every kernel image package of every suite, from the harness's apt state (refreshed when
    older than a day, or now with refresh=True), memoised per update (apt-cache costs ~1.5 s)."""
    if refresh:
        aptstate.update(progress)
    else:
        aptstate.ensure_fresh(progress)
    stamp = str(aptstate.last_update() or "")
    try:
        saved = json.loads(_memo().read_text())
        if stamp and saved.get("stamp") == stamp:
            return [AvailableKernel(**k) for k in saved["kernels"]]
    except (OSError, ValueError, TypeError, KeyError):
        pass
    names = [n for n in aptstate.pkgnames("linux-image-") if parse_image_name(n)]
    split = aptstate.pkgnames("linux-binary-") + aptstate.pkgnames("linux-modules-")
    kernels = available_from(aptstate.madison(names), split)
    if stamp and kernels:
        _memo().write_text(json.dumps({"stamp": stamp, "kernels": [k.__dict__ for k in kernels]}))
    return kernels


def lines(
    kernels: list[AvailableKernel], flavour: str | None = "", complete_only: bool = True
) -> list[AvailableKernel]:
    """The newest package of every line (6.1, 6.12, …, 7.3) of a flavour (None: any), in version
    order (pure). complete_only leaves out packages whose modules the archive lacks, so a line
    that has only such packages (6.19, 7.0, 7.1 as of 2026-12) drops out."""
    newest: dict[tuple[int, int], AvailableKernel] = {}
    for k in kernels:
        if (flavour is not None and k.flavour != flavour) or (complete_only and not k.modules):
            continue
        ln = k.upstream[:2]
        if ln not in newest or k.key() > newest[ln].key():
            newest[ln] = k
    return [newest[ln] for ln in sorted(newest)]


def with_cached(kernels: list[AvailableKernel]) -> list[AvailableKernel]:
    """The archive's kernels plus the cached ones it no longer lists (old packages)."""
    known = {a.package for a in kernels}
    return kernels + [k for k in cached_kernels() if k.package not in known]


def resolve_package(spec: str, progress: Progress = lambda s: None) -> str:
    """Turn a debian: spec (without the prefix) into a concrete package name."""
    return resolve(spec, progress).package


def resolve(spec: str, progress: Progress = lambda s: None) -> AvailableKernel:
    """The package a debian: spec (without the prefix) names, and the suite it comes from.

    A full package version already in the cache needs no apt at all. Otherwise the apt state
    answers (refreshed once more when the spec is not found and the lists are over an hour old);
    offline, the cache answers."""
    if _FULL.match(spec.removesuffix("-amd64")) and package_name(spec) in cached_packages():
        return select(spec, cached_kernels())
    try:
        kernels = available(progress)
    except KernelError as e:
        cached = cached_kernels()
        if not cached:
            raise KernelError(f"debian:{spec}: {e}, and no kernel is cached") from None
        progress(f"{e}; choosing among cached kernels")
        return select(spec, cached)
    try:
        return select(spec, with_cached(kernels))
    except KernelError:
        when = aptstate.last_update() or 0
        if time.time() - when < 3600:
            raise
        return select(spec, with_cached(available(progress, refresh=True)))


# ---- download and unpack --------------------------------------------------------------------


def _locate(root: Path) -> tuple[str, str, str, str | None]:
    """(release, vmlinuz, config, modules) relative paths in an unpacked set of packages."""
    for mods in ("lib/modules", "usr/lib/modules"):
        base = root / mods
        releases = [p.name for p in base.iterdir()] if base.is_dir() else []
        if len(releases) > 1:
            raise KernelError(f"expected one {mods}/<release>, found {sorted(releases)}")
        if not releases:
            continue
        r = releases[0]
        for vm, cfg in (
            (f"boot/vmlinuz-{r}", f"boot/config-{r}"),
            (f"{mods}/{r}/vmlinuz", f"{mods}/{r}/config"),
        ):
            if (root / vm).is_file():
                has_modules = (root / mods / r / "kernel").is_dir()
                return r, vm, cfg, f"{mods}/{r}" if has_modules else None
    # linux-binary-X alone (its modules and base packages missing from the archive): the image,
    # without a config or modules.
    images = sorted((root / "boot").glob("vmlinuz-*")) if (root / "boot").is_dir() else []
    if len(images) == 1:
        r = images[0].name.removeprefix("vmlinuz-")
        return r, f"boot/vmlinuz-{r}", f"boot/config-{r}", None
    raise KernelError("no vmlinuz in it (not a kernel image package)")


def _companions(deb: Path, abi_flavour: str) -> list[str]:
    """For a split (6.19+) meta package: the linux-binary/-modules/-base packages it needs."""
    want = re.compile(rf"^linux-(binary|modules|base)-{re.escape(abi_flavour)}$")
    return [n for n in aptstate.parse_depends(_deb_field(deb, "Depends")) if want.match(n)]


def _deb_field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


def fetch(package: str, progress: Progress = lambda s: None, suite: str = "") -> DebianKernel:
    """Download and unpack `package` (and, for the split layout, its binary/modules/base
    packages) into the cache; reused when already there."""
    hit = load_cached(package)
    if hit is not None:
        return hit
    for tool in ("apt-get", "dpkg-deb", "depmod"):
        if not shutil.which(tool):
            raise ToolMissing(f"{tool} not found: run ci/setup.sh (or apt-get install kmod dpkg apt)")
    dest = _cache_base() / package
    dest.parent.mkdir(parents=True, exist_ok=True)
    abi_flavour = package.removeprefix("linux-image-")
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as tmp:
        got = aptstate.download([package], Path(tmp), progress)
        deb = got[package]
        version = _deb_field(deb, "Version")
        root = Path(tmp) / "root"
        progress(f"unpacking {deb.name}")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        packages: list[str] = [package]
        missing: list[str] = []
        try:
            located = _locate(root)
        except KernelError:  # the split layout (6.19+): a meta package naming the parts
            parts = _companions(deb, abi_flavour)
            more = aptstate.download(parts, Path(tmp), progress, required=False)
            missing = [p for p in parts if p not in more]
            for name, part in more.items():
                progress(f"unpacking {part.name}")
                subprocess.run(["dpkg-deb", "-x", str(part), str(root)], check=True)
                packages.append(name)
            try:
                located = _locate(root)
            except KernelError as e:
                raise KernelError(f"{package}: {e}") from None
        release, vmlinuz, config, modules = located
        if modules is not None:
            # The packages ship no modules.dep; depmod builds it. depmod -b BASE reads
            # BASE/lib/modules, so the usr/lib layout gets BASE=root/usr.
            base = root / "usr" if modules.startswith("usr/") else root
            subprocess.run(["depmod", "-b", str(base), release], check=True, capture_output=True)
        elif missing:
            progress(
                f"warning: {', '.join(missing)} cannot be downloaded from the archive: "
                f"{release} will boot without its modules (no virtio disks, no 9p)"
            )
        (root / "meta.json").write_text(
            json.dumps(
                {
                    "package": package,
                    "version": version,
                    "release": release,
                    "suite": suite,
                    "vmlinuz": vmlinuz,
                    "config": config,
                    "modules": modules,
                    "packages": packages,
                    "missing": missing,
                },
                indent=1,
            )
            + "\n"
        )
        root.rename(dest)
    hit = load_cached(package)
    assert hit is not None
    return hit
