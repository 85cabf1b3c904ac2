"""The test suites: an explicit registry of test programs, how to build them and list their ids.

Every program follows one contract (cow_tests/README.md): KTAP on stdout, `--list` prints its
fixed ids, `prog ID...` runs just those.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildError, InputError, ToolMissing
from .paths import REPO_ROOT, cache_dir

COW_SRC = REPO_ROOT / "cow_tests"
PROBES_SRC = REPO_ROOT / "guest" / "probes"
FAULTS_SRC = REPO_ROOT / "guest" / "faults"
GUEST_PYTHON = ("/usr/bin/python3", "-I")  # the host's, shared read-only into the guest
HOST_PYTHON = (shutil.which("python3") or "python3",)


@dataclass(frozen=True)
class Program:
    name: str  # JUnit suite name, e.g. cow_fork
    suite: str  # registry name, e.g. cow
    host_path: Path  # what is copied into the guest
    guest_path: str  # where it lands, relative to /harness
    guest_interp: tuple[str, ...] = ()  # () for a static binary
    host_interp: tuple[str, ...] = ()  # to ask the program for --list on the host
    timeout_s: float = 900.0

    @property
    def needs_usr(self) -> bool:
        """Runs on the host's /usr (python3), shared over 9p."""
        return bool(self.guest_interp) and self.guest_interp[0].startswith("/usr/")

    def guest_argv(self, ids: list[str]) -> list[str]:
        return [*self.guest_interp, f"/harness/{self.guest_path}", *ids]


@dataclass(frozen=True)
class Selected:
    program: Program
    ids: tuple[str, ...]


def _cow_build_dir() -> Path:
    # One build dir per source state, so a checkout switch never runs stale binaries.
    h = hashlib.sha256()
    for f in sorted(COW_SRC.glob("*")):
        if f.suffix in (".c", ".h") or f.name == "Makefile":
            h.update(f.name.encode() + f.read_bytes())
    return cache_dir() / "cow_tests" / h.hexdigest()[:16]


def build_cow() -> list[Program]:
    """Build the C programs statically (make is incremental; the dir is keyed by source hash)."""
    for tool in ("make", "gcc"):
        if not shutil.which(tool):
            raise ToolMissing(f"{tool} not found: run ci/setup.sh")
    out = _cow_build_dir()
    out.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["make", "-s", "-C", str(COW_SRC), f"O={out}"], capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        hint = " (is liburing-dev installed? run ci/setup.sh)" if "uring" in r.stderr else ""
        raise BuildError(f"building cow_tests failed: {last}{hint}")
    progs = sorted(p for p in out.iterdir() if p.is_file() and p.stat().st_mode & 0o111)
    return [Program(p.name, "cow", p, f"cow_tests/{p.name}") for p in progs]


def probes() -> list[Program]:
    return [
        Program(p.stem, "probes", p, f"probes/{p.name}", GUEST_PYTHON, HOST_PYTHON)
        for p in sorted(PROBES_SRC.glob("*.py"))
        if not p.name.startswith("_")
    ]


def faults() -> list[Program]:
    """The harness's own fault drill (not a default suite): a test that hangs, one that makes a
    kernel report, one that panics the kernel, with ordinary cases around them."""
    return [Program(p.stem, "faults", p, f"faults/{p.name}", GUEST_PYTHON, HOST_PYTHON, timeout_s=20.0)
            for p in sorted(FAULTS_SRC.glob("*.py"))]


SUITES = {"cow": build_cow, "probes": probes, "faults": faults}
DEFAULT_SUITES = ("cow", "probes")


def programs(suites: list[str]) -> list[Program]:
    out: list[Program] = []
    for s in suites or DEFAULT_SUITES:
        if s not in SUITES:
            raise InputError(f"--suite {s}: unknown suite (known: {', '.join(sorted(SUITES))})")
        out.extend(SUITES[s]())
    return out


@functools.lru_cache(maxsize=None)
def _ids(p: Program) -> tuple[str, ...]:
    r = subprocess.run([*p.host_interp, str(p.host_path), "--list"], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError(f"{p.name} --list failed: {r.stderr.strip()[:200]}")
    return tuple(r.stdout.split())


def list_ids(p: Program) -> list[str]:
    """The program's fixed id list, asked of the program itself on the host (once)."""
    return list(_ids(p))


def select(progs: list[Program], filters: list[str]) -> list[Selected]:
    """Programs with the ids that match any --filter glob (all ids when there is no filter)."""
    chosen: list[Selected] = []
    for p in progs:
        ids = [i for i in list_ids(p) if not filters or any(fnmatch.fnmatchcase(i, f) for f in filters)]
        if ids:
            chosen.append(Selected(p, tuple(ids)))
    if not chosen:
        raise InputError(f"--filter {' '.join(filters)}: matches no test id (try --list)")
    return chosen


def payload_files(selected: list[Selected]) -> dict[str, Path]:
    files = {s.program.guest_path: s.program.host_path for s in selected}
    if any(s.program.needs_usr for s in selected):
        for helper in PROBES_SRC.glob("_*.py"):
            files[f"probes/{helper.name}"] = helper
    return files
