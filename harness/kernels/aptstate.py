"""An apt state of the harness's own: Debian's bookworm and trixie suites, without touching /etc/apt.

The machine's apt sources may name bookworm only, while the kernels people run (6.16 … 7.3)
live in trixie and trixie-backports. apt can be pointed at a sources list, a lists dir, a
package cache and an (empty) dpkg status of our own with `-o Dir::...` options, so the harness
keeps all of that under $XDG_CACHE_HOME/harness/apt/ and never changes the host's apt.

Refreshed by `harness kernel update`, on demand when a spec is not found, and otherwise at most
once a day (`ensure_fresh`). Parsers here are pure; the apt calls are thin wrappers.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import KernelError, ToolMissing
from harness.model import Progress
from harness.paths import cache_dir

# (archive path, suite): the Debian suites that hold the kernel line 6.1 … 7.3.
SUITES: tuple[tuple[str, str], ...] = (
    ("debian", "bookworm"),
    ("debian", "bookworm-updates"),
    ("debian-security", "bookworm-security"),
    ("debian", "bookworm-backports"),
    ("debian", "trixie"),
    ("debian", "trixie-updates"),
    ("debian-security", "trixie-security"),
    ("debian", "trixie-backports"),
)
DEFAULT_MIRROR = "http://deb.debian.org"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
MAX_AGE_S = 24 * 3600


@dataclass(frozen=True)
class PackageVersion:
    """One line of `apt-cache madison`: a package, a version, the suite that serves it."""

    name: str
    version: str  # Debian version: 6.1.192-2, 7.3.4-1~bpo13+1
    suite: str  # bookworm-security, trixie-backports, ...


def sources_list(mirror: str = DEFAULT_MIRROR, keyring: str = KEYRING) -> str:
    """The sources.list text for every suite in SUITES (pure)."""
    lines = [
        f"deb [signed-by={keyring}] {mirror.rstrip('/')}/{archive} {suite} main" for archive, suite in SUITES
    ]
    return "\n".join(lines) + "\n"


_MADISON = re.compile(r"^\s*(?P<name>\S+)\s*\|\s*(?P<version>\S+)\s*\|\s*\S+\s+(?P<suite>[^/\s]+)/\S+")


def parse_madison(text: str) -> list[PackageVersion]:
    """`apt-cache madison` output → PackageVersion list, in apt's order (pure).

    Source lines (`... Sources`) are left out: we only download binaries."""
    out: list[PackageVersion] = []
    for line in text.splitlines():
        if line.rstrip().endswith("Sources"):
            continue
        m = _MADISON.match(line)
        if m:
            out.append(PackageVersion(m["name"], m["version"], m["suite"]))
    return out


def parse_depends(text: str) -> list[str]:
    """Package names in a Depends field (alternatives: the first one), versions dropped (pure)."""
    names = []
    for part in text.split(","):
        first = part.split("|")[0].strip()
        name = first.split("(")[0].strip().split(":")[0]
        if name:
            names.append(name)
    return names


def root() -> Path:
    return cache_dir() / "apt"


def mirror() -> str:
    return os.environ.get("HARNESS_DEBIAN_MIRROR", DEFAULT_MIRROR)


def options(base: Path | None = None) -> list[str]:
    """The `-o` options that make apt-get/apt-cache use our state and nothing of /etc/apt's."""
    d = base or root()
    return [
        "-o",
        f"Dir::Etc::SourceList={d / 'sources.list'}",
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        f"Dir::Etc::Preferences={d / 'preferences'}",
        "-o",
        "Dir::Etc::PreferencesParts=/dev/null",
        "-o",
        f"Dir::State::Lists={d / 'lists'}",
        "-o",
        f"Dir::State::status={d / 'status'}",
        "-o",
        f"Dir::Cache={d / 'cache'}",
        "-o",
        "APT::Architecture=amd64",
        "-o",
        "APT::Get::List-Cleanup=true",
        "-o",
        "Debug::NoLocking=true",  # our own flock (below) guards our own dirs
    ]


def _prepare(d: Path) -> None:
    for sub in ("lists/partial", "cache/archives/partial"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    want = sources_list(mirror())
    src = d / "sources.list"
    if not src.is_file() or src.read_text() != want:
        src.write_text(want)
    for empty in ("status", "preferences"):
        if not (d / empty).exists():
            (d / empty).write_text("")


@contextlib.contextmanager
def _locked(d: Path) -> Iterator[None]:
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _need(tool: str) -> None:
    if not shutil.which(tool):
        raise ToolMissing(f"{tool} not found: the harness resolves Debian kernels with apt (run ci/setup.sh)")


def last_update() -> float | None:
    stamp = root() / "updated"
    try:
        return stamp.stat().st_mtime
    except OSError:
        return None


def update(progress: Progress = lambda s: None) -> None:
    """`apt-get update` of our suites. A suite that does not answer is an error naming it."""
    _need("apt-get")
    d = root()
    with _locked(d):
        _prepare(d)
        progress(f"updating the harness's apt lists ({', '.join(s for _, s in SUITES)})")
        r = subprocess.run(["apt-get", *options(d), "-q", "update"], capture_output=True, text=True)
        failed = [ln for ln in r.stderr.splitlines() if ln.startswith(("E:", "W: Failed", "Err:"))]
        if r.returncode != 0 or failed:
            why = (failed or r.stderr.strip().splitlines() or ["apt-get update failed"])[0]
            raise KernelError(f"cannot reach the Debian archive for the harness's apt state: {why.strip()}")
        (d / "updated").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))


def ensure_fresh(progress: Progress = lambda s: None, max_age_s: float = MAX_AGE_S) -> None:
    """Update when never updated, or when the last update is older than max_age_s. A failed
    refresh of lists we already have is not fatal (offline machine): the old lists serve."""
    when = last_update()
    if when is not None and time.time() - when < max_age_s:
        return
    try:
        update(progress)
    except KernelError:
        if when is None:
            raise
        progress("could not refresh the harness's apt lists; using the ones from the last update")


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    _need(tool)
    return subprocess.run([tool, *options(), *args], capture_output=True, text=True)


def pkgnames(prefix: str) -> list[str]:
    if last_update() is None:
        return []
    return _run("apt-cache", "pkgnames", prefix).stdout.split()


def madison(names: list[str]) -> list[PackageVersion]:
    if last_update() is None or not names:
        return []
    out: list[PackageVersion] = []
    for i in range(0, len(names), 200):  # keep argv small
        out += parse_madison(_run("apt-cache", "madison", *names[i : i + 200]).stdout)
    return out


def depends(package: str) -> list[str]:
    r = _run("apt-cache", "show", "--no-all-versions", package)
    for line in r.stdout.splitlines():
        if line.startswith("Depends:"):
            return parse_depends(line.partition(":")[2])
    return []


def download(
    packages: list[str], dest: Path, progress: Progress = lambda s: None, required: bool = True
) -> dict[str, Path]:
    """apt-get download each package into dest; returns name → .deb for those that came.

    A package the archive lists but cannot serve is left out (the caller decides whether that
    is fatal); apt's own complaint for it is raised only when nothing came at all."""
    _need("apt-get")
    got: dict[str, Path] = {}
    errors: list[str] = []
    for pkg in packages:
        before = set(dest.glob("*.deb"))
        progress(f"downloading {pkg}")
        r = subprocess.run(
            ["apt-get", *options(), "-q", "download", pkg], cwd=dest, capture_output=True, text=True
        )
        new = sorted(set(dest.glob("*.deb")) - before)
        if r.returncode == 0 and new:
            got[pkg] = new[0]
        else:
            errors.append((r.stderr.strip().splitlines() or ["no .deb produced"])[-1])
    if required and not got and errors:
        raise KernelError(f"cannot download {packages[0]}: {errors[0]}")
    return got
