"""The test suites: an explicit registry of test programs, how to build them and list their ids.

Every program follows one contract (cow_tests/README.md): KTAP on stdout, `--list` prints its
fixed ids, `prog ID...` runs just those.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from harness.errors import BuildError, InputError, KernelError, ToolMissing
from harness.kernels import headers
from harness.model import Kernel, TestNode
from harness.paths import REPO_ROOT, cache_dir
from harness.suites import kselftest
from harness.suites.kselftest import parse_spec

COW_SRC = REPO_ROOT / "cow_tests"
PROBES_SRC = REPO_ROOT / "guest" / "probes"
FAULTS_SRC = REPO_ROOT / "guest" / "faults"
HOSTILE_SRC = REPO_ROOT / "guest" / "hostile"
GUEST_PYTHON = ("/usr/bin/python3", "-I")  # the host's, shared read-only into the guest
HOST_PYTHON = (shutil.which("python3") or "python3",)


class ProgramKind(StrEnum):
    HARNESS = "harness"  # our contract: --list prints the ids, `prog ID...` runs just those
    # An upstream selftest run whole: its results are keyed on their `# [RUN]` lines under the
    # program's id_prefix (suites/kselftest.py), known only once it ran.
    KSELFTEST = "kselftest"


@dataclass(frozen=True)
class Program:
    name: str  # JUnit suite name, e.g. cow_fork
    suite: str  # registry name, e.g. cow
    host_path: Path  # what is copied into the guest
    guest_path: str  # where it lands, relative to /harness
    guest_interp: tuple[str, ...] = ()  # () for a static binary
    host_interp: tuple[str, ...] = ()  # to ask the program for --list on the host
    timeout_s: float = 900.0
    kind: ProgramKind = ProgramKind.HARNESS
    id_prefix: str = ""
    guest_cwd: str = ""  # run from this directory in the guest ("" = wherever the agent is)
    needs_rdma: bool = False  # the guest must have an RDMA (soft-RoCE) device
    needs_pin: bool = False  # takes long-term pins through gup_test or the harness_pin module
    needs_pci_ram_bar: bool = (
        False  # mmaps the RAM BAR of the machine's ivshmem device (QemuSpec.pci_ram_bar)
    )

    @property
    def needs_usr(self) -> bool:
        """Runs on the host's /usr (python3), shared over 9p."""
        return bool(self.guest_interp) and self.guest_interp[0].startswith("/usr/")

    @property
    def runs_whole(self) -> bool:
        """Takes no ids: runs whole, and what it ran is known from its output."""
        return self.kind is ProgramKind.KSELFTEST

    def guest_argv(self, ids: list[str]) -> list[str]:
        argv = [*self.guest_interp, f"/harness/{self.guest_path}"]
        if self.runs_whole:
            return ["/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", self.guest_cwd or "/", *argv]
        return [*argv, *ids]

    def per_case(self, sel: Selected) -> list[Selected]:
        """The selection one case at a time (--isolate case); a program that runs whole stays whole."""
        return [sel] if self.runs_whole else [Selected(self, (i,)) for i in sel.ids]

    def planned(self, sel: Selected) -> int | None:
        """How many results its KTAP plan must announce (None: as many as it says)."""
        return None if self.runs_whole else len(sel.ids)

    def log_slices(self, root: TestNode, console: str) -> dict[str, str] | None:
        """Where each case's kernel log is, for a program whose markers carry upstream's names
        rather than our ids (None: the markers carry our ids)."""
        return kselftest.slices(root, self.id_prefix, console) if self.runs_whole else None


@dataclass(frozen=True)
class Selected:
    program: Program
    ids: tuple[str, ...]
    filters: tuple[str, ...] = ()  # kselftest: applied to the parsed ids after the run


RDMA_PROGRAMS = frozenset({"cow_rdma"})  # registrations on a soft-RoCE device (cow_tests/cow_rdma.c)
PCI_RAM_BAR_PROGRAMS = frozenset({"pfnmap_pci"})  # guest/probes/pfnmap_pci.py
PIN_PROGRAMS = frozenset({"cow_gup", "cow_ksm"})  # gup_test's interface, or the harness_pin module's


def _cow_build_dir() -> Path:
    # One build dir per source state, so a checkout switch never runs stale binaries.
    h = hashlib.sha256()
    for f in sorted(COW_SRC.glob("*")):
        if f.suffix in (".c", ".h") or f.name == "Makefile":
            h.update(f.name.encode() + f.read_bytes())
    # cow_rdma is built on libibverbs when the host has it, else on a stub: a different build.
    r = subprocess.run(["gcc", "-print-file-name=librxe-rdmav34.a"], capture_output=True, text=True)
    h.update(b"verbs" if "/" in r.stdout else b"no verbs")
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
        hint = (
            " (is liburing-dev installed? run ci/setup.sh)"
            if "uring" in r.stderr
            else " (are libibverbs-dev and ibverbs-providers installed? run ci/setup.sh)"
            if "verbs" in r.stderr or "rxe" in r.stderr
            else ""
        )
        raise BuildError(f"building cow_tests failed: {last}{hint}")
    progs = sorted(p for p in out.iterdir() if p.is_file() and p.stat().st_mode & 0o111)
    return [
        Program(
            p.name,
            "cow",
            p,
            f"cow_tests/{p.name}",
            needs_rdma=p.name in RDMA_PROGRAMS,
            needs_pin=p.name in PIN_PROGRAMS,
        )
        for p in progs
    ]


def probes() -> list[Program]:
    return [
        Program(
            p.stem,
            "probes",
            p,
            f"probes/{p.name}",
            GUEST_PYTHON,
            HOST_PYTHON,
            needs_pci_ram_bar=p.stem in PCI_RAM_BAR_PROGRAMS,
        )
        for p in sorted(PROBES_SRC.glob("*.py"))
        if not p.name.startswith("_")
    ]


def faults() -> list[Program]:
    """The harness's own fault drill (not a default suite): a test that hangs, one that makes a
    kernel report, one that panics the kernel, with ordinary cases around them."""
    return [
        Program(p.stem, "faults", p, f"faults/{p.name}", GUEST_PYTHON, HOST_PYTHON, timeout_s=20.0)
        for p in sorted(FAULTS_SRC.glob("*.py"))
    ]


def hostile() -> list[Program]:
    """The hostile-guest drill (not a default suite): a KTAP plan bomb, a gzip bomb,
    64 MiB of output, bytes that are not UTF-8, terminal escapes, fence-breaking backticks.
    Each must end in a complete, valid report and a bounded harness."""
    return [
        Program(p.stem, "hostile", p, f"hostile/{p.name}", GUEST_PYTHON, HOST_PYTHON, timeout_s=300.0)
        for p in sorted(HOSTILE_SRC.glob("*.py"))
        if not p.name.startswith("_")
    ]


def kselftest_program(suite: str, kernel_spec: str | None) -> Program:
    """`kselftest:DIR/TEST`, built from the source tree of the kernel under test."""
    d, t = kselftest.parse_spec(suite)
    binary = kselftest.build(kselftest.source_for(kernel_spec), d, t)
    return Program(
        kselftest.program_name(d, t),
        suite,
        binary,
        f"kselftest/{d}/{t}",
        kind=ProgramKind.KSELFTEST,
        id_prefix=kselftest.id_prefix(d, t),
        guest_cwd=kselftest.GUEST_CWD,
    )


WARN_MODULE_SRC = FAULTS_SRC / "warn_module"


def _headers_for(kernel: Kernel, progress: Callable[[str], None]) -> Path | None:
    """Where to build an out-of-tree module for `kernel`: a Debian kernel's headers from the
    harness's apt state (headers.py), or the tree the kernel was built in."""
    if kernel.origin.startswith("debian:"):
        return headers.for_debian(kernel.release, progress)
    for cand in (
        Path(f"/usr/src/linux-headers-{kernel.release}"),
        Path(f"/lib/modules/{kernel.release}/build"),
    ):
        if (cand / "Makefile").is_file():
            return cand
    if kernel.origin.startswith("tree:"):
        return Path(kernel.origin.removeprefix("tree:"))
    return None


def _module(
    kernel: Kernel, src: Path, name: str, what: str, progress: Callable[[str], None], strict: bool
) -> tuple[Path, bool]:
    """Build the out-of-tree module in `src` for `kernel` (cached per release, rebuilt when the
    source changes). Returns (the .ko, True), or (a file saying why there is none, False) when
    it cannot be built here: no headers, not the kernel's compiler, or (unless strict, which
    raises BuildError) a failed build."""
    out = cache_dir() / f"{name}_module" / kernel.release
    out.mkdir(parents=True, exist_ok=True)
    why = out / f"{name}.ko.why"
    try:
        cc = headers.compiler_for(kernel)  # before any download: trixie kernels need gcc-14
        tree = _headers_for(kernel, progress)
    except (BuildError, KernelError) as e:
        progress(f"{what}: the {name} module is left out: {e}")
        why.write_text(f"{e}\n")
        return why, False
    if tree is None:
        why.write_text(f"no headers for {kernel.release} on this host\n")
        return why, False
    changed = False
    for f in src.iterdir():
        dst = out / f.name
        if not dst.is_file() or dst.read_bytes() != f.read_bytes():
            shutil.copyfile(f, dst)
            changed = True
    ko = out / f"{name}.ko"
    if ko.is_file() and not changed:  # built from these sources before (kbuild's no-op costs ~1 s)
        return ko, True
    r = subprocess.run(
        ["make", "-s", "-C", str(tree), f"M={out}", f"CC={cc}", "modules"], capture_output=True, text=True
    )
    if r.returncode != 0 or not ko.is_file():
        (out / "build.log").write_text(r.stdout + r.stderr)
        lines = r.stderr.strip().splitlines()
        # The compiler's error, not make's "*** [...] Error 1" that follows it.
        errors = [ln for ln in lines if "error" in ln.lower() and not ln.startswith(("make", "  "))]
        last = (errors or lines or ["no output"])[-1].strip()
        msg = f"building the {what} module {name} against {tree} failed: {last} (log: {out / 'build.log'})"
        if strict:
            raise BuildError(msg)
        progress(f"warning: {msg}")
        why.write_text(msg + "\n")
        return why, False
    return ko, True


PIN_MODULE_SRC = COW_SRC / "pin_module"
PINNERS = ("auto", "gup_test", "module")


def kernel_payload(
    kernel: Kernel,
    selected: list[Selected],
    progress: Callable[[str], None] = lambda s: None,
    pinner: str = "auto",
) -> dict[str, Path]:
    """Guest files that must be built for the kernel itself: the fault drill's WARN module, and
    the harness_pin module (cow_tests/pin_module) that gives cow_gup its long-term pins where
    the kernel has no gup_test (unless --pinner gup_test). When one cannot be built here (no
    headers, not the kernel's compiler) it is left out, and the cases that need it SKIP with
    the reason written beside it (faults/harness_warn.ko.why, modules/harness_pin.ko.why)."""
    files: dict[str, Path] = {}
    if any(s.program.suite == "faults" for s in selected):
        path, ok = _module(kernel, WARN_MODULE_SRC, "harness_warn", "fault drill", progress, strict=True)
        files["faults/harness_warn.ko" if ok else "faults/harness_warn.ko.why"] = path
    wants_pin = any(s.program.needs_pin for s in selected)
    if (
        wants_pin
        and pinner != "gup_test"
        and (pinner == "module" or kernel.config.get("CONFIG_GUP_TEST") != "y")
    ):
        path, ok = _module(kernel, PIN_MODULE_SRC, "harness_pin", "long-term pin", progress, strict=False)
        files["modules/harness_pin.ko" if ok else "modules/harness_pin.ko.why"] = path
    return files


SUITES = {"cow": build_cow, "probes": probes, "faults": faults, "hostile": hostile}
DEFAULT_SUITES = ("cow", "probes")


def check_names(suites: list[str]) -> None:
    """An unknown suite name is an InputError, found without building anything."""
    for s in suites:
        if s.startswith("kselftest:"):
            parse_spec(s)
        elif s not in SUITES:
            raise InputError(
                f"--suite {s}: unknown suite (known: {', '.join(sorted(SUITES))}, kselftest:DIR/TEST)"
            )


def programs(suites: list[str], kernel_spec: str | None = None) -> list[Program]:
    out: list[Program] = []
    for s in suites or DEFAULT_SUITES:
        if s.startswith("kselftest:"):
            out.append(kselftest_program(s, kernel_spec))
            continue
        check_names([s])
        out.extend(SUITES[s]())
    return out


@functools.cache
def _ids(p: Program) -> tuple[str, ...]:
    r = subprocess.run([*p.host_interp, str(p.host_path), "--list"], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError(f"{p.name} --list failed: {r.stderr.strip()[:200]}")
    return tuple(r.stdout.split())


def list_ids(p: Program) -> list[str]:
    """The program's fixed id list, asked of the program itself on the host (once). A
    kselftest's ids are known only after it ran: its one id is its prefix."""
    if p.runs_whole:
        return [p.id_prefix]
    return list(_ids(p))


def exact_glob(case_id: str) -> str:
    """A --filter glob that matches exactly this id."""
    return re.sub(r"([*?\[])", r"[\1]", case_id)


def select(progs: list[Program], filters: list[str]) -> list[Selected]:
    """Programs with the ids that match any --filter glob (all ids when there is no filter)."""
    chosen: list[Selected] = []
    for p in progs:
        if p.runs_whole:
            if kselftest.could_match(p.id_prefix, filters):
                chosen.append(Selected(p, (p.id_prefix,), tuple(filters)))
            continue
        ids = [i for i in list_ids(p) if not filters or any(fnmatch.fnmatchcase(i, f) for f in filters)]
        if ids:
            chosen.append(Selected(p, tuple(ids)))
    if not chosen:
        raise InputError(f"--filter {' '.join(filters)}: matches no test id (try --list)")
    return chosen


def payload_files(selected: list[Selected]) -> dict[str, Path]:
    files = {s.program.guest_path: s.program.host_path for s in selected}
    if any(s.program.suite == "hostile" for s in selected):
        files["hostile/_common.py"] = HOSTILE_SRC / "_common.py"
    if any(s.program.needs_usr for s in selected):
        for helper in PROBES_SRC.glob("_*.py"):
            files[f"probes/{helper.name}"] = helper
    return files
