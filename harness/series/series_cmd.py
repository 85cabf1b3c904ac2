"""`harness series`: validate a patch series patch by patch, before posting it.

    harness series --src TREE --base REV PATCHES      (an mbox, or a directory of .patch files)
    harness series --src TREE BASE..TIP               (commits already in the tree)

For the base and then each patch: apply it (`git am` in our worktree), build incrementally,
boot, run the suites; then the matrix (harness/series/core.py decides, series_report.py writes).

The worktree and its build dir live in the cache, one per repository and configuration, and are
kept between runs: after the first build from scratch, a series costs only what its patches
recompile, also when the same series is tested again after a revision. A lock keeps two series
off the same worktree. A series dir holds:

    matrix.txt  series.md  junit.xml  series.json   (rewritten after every row)
    patches/NNNN.msg                                 (the messages, as git am took them)
    rows/NN/build.log  rows/NN/run/                  (each row's build output and run dir)
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness import reportio, signals
from harness.errors import BuildError, HarnessError, InputError
from harness.kernels import kbuild
from harness.kernels.gitrepo import check_repo, git
from harness.model import Outcome, Progress
from harness.paths import cache_dir
from harness.run import runopts
from harness.run.rundir import make_run_dir
from harness.run.runner import RunRequest, Stage, check_junit_path, execute, guest_results
from harness.series import series_report
from harness.series.core import (
    Cell,
    CompilerWarning,
    Row,
    Step,
    W1Ledger,
    WarningLedger,
    breaks,
    compiled_sources,
    exit_code,
    parse_warnings,
)
from harness.series.series_git import Patch, Series, SeriesTree, from_emails, from_range
from harness.suites import registry as suites

DEFAULT_SUITES = ("cow",)


@dataclass(frozen=True)
class SeriesRequest:
    src: Path
    what: str  # PATCHES path or BASE..TIP
    base: str | None = None
    run: RunRequest = RunRequest(suites=DEFAULT_SUITES)
    fragments: tuple[Path, ...] = kbuild.DEFAULT_FRAGMENTS
    config_base: str = kbuild.DEFAULT_BASE
    jobs: int = os.cpu_count() or 1
    three_way: bool = False
    stop_on_first: bool = False
    only_last: bool = False
    out: Path | None = None
    junit: Path | None = None
    w1: bool = False  # count W=1 warnings in each patch's files before and after it
    strict: bool = False  # a checkpatch error fails the series (exit 1)
    url_base: str | None = None  # where the series dir will be published (patchwork target URLs)


def add_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("series", help="validate a patch series patch by patch (build, boot, tests)")
    p.add_argument(
        "what",
        metavar="PATCHES|BASE..TIP",
        help="an mbox or a directory of .patch files (with --base), or a commit range in the tree",
    )
    p.add_argument(
        "--src", type=Path, default=Path("."), metavar="TREE", help="the kernel git tree (default .)"
    )
    p.add_argument("--base", metavar="REV", help="the commit the patches apply to")
    p.add_argument("--3way", dest="three_way", action="store_true", help="git am --3way")
    p.add_argument(
        "--stop-on-first", action="store_true", help="stop at the first patch that breaks something"
    )
    p.add_argument("--only-last", action="store_true", help="build and test only the base and the tip")
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="series dir (default ./harness-series/<time>-<base>)"
    )
    p.add_argument("--junit", type=Path, metavar="FILE", help="also write the JUnit XML here")
    c = p.add_argument_group("what kernel developers check before posting")
    c.add_argument(
        "--w1",
        action="store_true",
        help="count W=1 warnings in the C files each patch touches, before and after it",
    )
    c.add_argument(
        "--strict",
        action="store_true",
        help="a patch that adds checkpatch errors fails the series (exit 1; default: reported)",
    )
    c.add_argument(
        "--url-base",
        metavar="URL",
        help="where the series dir will be published: the target URL of each patchwork check in series.json",
    )
    b = p.add_argument_group("building")
    b.add_argument(
        "--fragment",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="config fragment (repeatable; default kernels/lean.config + kernels/cow.config)",
    )
    b.add_argument(
        "--config",
        default=kbuild.DEFAULT_BASE,
        metavar="BASE",
        help=f"{'|'.join(kbuild.BASES)} or a config file (default {kbuild.DEFAULT_BASE})",
    )
    b.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, metavar="N")
    r = runopts.add_each_run_arguments(p, "default: cow")
    r.add_argument(
        "--filter", action="append", default=[], metavar="GLOB", help="only case ids matching GLOB"
    )


def request_of(a: argparse.Namespace) -> SeriesRequest:
    run = runopts.request_of(a, DEFAULT_SUITES)
    frags = tuple(f.resolve() for f in a.fragment) or kbuild.DEFAULT_FRAGMENTS
    return SeriesRequest(
        a.src,
        a.what,
        a.base,
        run,
        frags,
        a.config,
        a.jobs,
        a.three_way,
        a.stop_on_first,
        a.only_last,
        a.out,
        a.junit,
        a.w1,
        a.strict,
        a.url_base,
    )


def cmd_series(a: argparse.Namespace, progress: Progress) -> int:
    return run_series(request_of(a), progress)


# ---- inputs --------------------------------------------------------------------------------


def load_series(req: SeriesRequest, repo: Path, patches_dir: Path) -> Series:
    path = Path(req.what).expanduser()
    if ".." in req.what and not path.exists():
        if req.base:
            raise InputError(f"{req.what}: a range carries its own base; drop --base")
        return from_range(repo, req.what)
    return from_emails(repo, path, req.base, patches_dir)


def _check(req: SeriesRequest) -> None:
    if req.stop_on_first and req.only_last:
        raise InputError("--stop-on-first and --only-last do not go together")
    kbuild.check_config_inputs(req.fragments, req.config_base, "--config")
    if req.jobs < 1:
        raise InputError("-j must be at least 1")
    check_junit_path(req.junit)
    if req.url_base is not None and not re.match(r"^https?://[^\s/]+", req.url_base):
        raise InputError(f"--url-base {req.url_base}: not an http(s) URL")

    # Bad suite names and filters are errors now, not after the base build.
    suites.check_names(list(req.run.suites))
    if req.run.filters and not any(s.startswith("kselftest:") for s in req.run.suites):
        suites.select(suites.programs(list(req.run.suites)), list(req.run.filters))


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """One series at a time per worktree (flock: released if we die)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise InputError(
                f"another harness series is using {path.parent} ({f.read().strip() or 'pid ?'}); "
                "wait for it to finish"
            ) from None
        f.truncate(0)
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        yield


# ---- one row ---------------------------------------------------------------------------------


@dataclass
class Builder:
    tree: SeriesTree
    req: SeriesRequest
    progress: Progress
    ledger: WarningLedger = dataclasses.field(default_factory=WarningLedger)

    def __post_init__(self) -> None:
        self.build_dir = kbuild.default_build_dir(self.tree.path, self.req.config_base, self.req.fragments)
        self.release = ""

    def build(self, row: Row, row_dir: Path) -> Row:
        log = self.build_dir / kbuild.LOG
        start = log.stat().st_size if log.is_file() else 0
        breq = kbuild.BuildRequest(
            self.tree.path, self.req.fragments, self.req.config_base, self.build_dir, self.req.jobs
        )
        t0 = time.monotonic()
        step, error = Step.OK, ""
        try:
            self.release = kbuild.build(breq, lambda s: self.progress(f"    {s}")).release
        except (BuildError, InputError) as e:  # InputError: a patch's Kconfig change dropped an option
            # Paths relative to the tree, and the row's own copy of the log (the kept one goes on).
            error = str(e).replace(f"{self.tree.path}/", "")
            step, error = Step.FAILED, re.sub(r"\(log: [^)]*\)$", f"(log: {row_dir / 'build.log'})", error)
        # Offsets in bytes: gcc quotes names with ‘’ (3 bytes each in UTF-8).
        data = log.read_bytes() if log.is_file() else b""
        part = (data[start:] if len(data) >= start else data).decode(
            errors="replace"
        )  # shorter: reconfigured
        row_dir.mkdir(parents=True, exist_ok=True)
        (row_dir / "build.log").write_text(part)
        warnings = parse_warnings(part, [str(self.tree.path), str(self.tree.path.resolve())])
        new = self.ledger.add(warnings, compiled_sources(part), row.files if row.index else ())
        return dataclasses.replace(
            row,
            build=step,
            build_error=error,
            warnings=tuple(warnings),
            new_warnings=tuple(new),
            build_s=round(time.monotonic() - t0, 1),
        )

    def w1(self, files: Sequence[str], row_dir: Path) -> list[CompilerWarning]:
        """The W=1 warnings of these C files, compiled now (the row's own w1.log)."""
        breq = kbuild.BuildRequest(
            self.tree.path, self.req.fragments, self.req.config_base, self.build_dir, self.req.jobs
        )
        out = kbuild.compile_w1(breq, [f for f in files if f.endswith(".c")])
        row_dir.mkdir(parents=True, exist_ok=True)
        (row_dir / "w1.log").write_text(out)
        return parse_warnings(out, [str(self.tree.path), str(self.tree.path.resolve())])


def run_row(row: Row, kernel: str, req: SeriesRequest, row_dir: Path, progress: Progress) -> Row:
    """Boot the row's kernel and run the suites. A guest that never produced a result is a boot
    failure; a run stopped before booting is the harness's problem (HarnessError)."""
    t0 = time.monotonic()
    out = execute(
        dataclasses.replace(req.run, kernel=kernel, out=row_dir / "run", junit=None, out_reuse=True),
        lambda s: progress(f"    {s}"),
    )
    real = guest_results(out)
    seconds = round(time.monotonic() - t0, 1)
    if real is None:
        return dataclasses.replace(
            row, boot=Step.FAILED, boot_error=out.error, run_s=seconds, run_dir=str(out.run_dir)
        )
    tests = {r.id: Cell(r.verdict, r.outcome, r.reason) for r in real}
    # A kernel that dies under the tests still booted; its lost cases are ERROR cells.
    tests.update(
        {
            r.id: Cell(r.verdict, Outcome.ERROR, r.reason)
            for r in out.results
            if r.not_run and r.id not in tests and out.stage != Stage.DONE
        }
    )
    return dataclasses.replace(row, boot=Step.OK, tests=tests, run_s=seconds, run_dir=str(out.run_dir))


# ---- the loop ----------------------------------------------------------------------------------


class RowBuilder(Protocol):
    build_dir: Path
    release: str

    def build(self, row: Row, row_dir: Path) -> Row: ...
    def w1(self, files: Sequence[str], row_dir: Path) -> list[CompilerWarning]: ...


# What the loop needs besides git: a builder and a way to run a built row (fakes in unit tests).
RowRunner = Callable[[Row, Path], Row]
Parts = Callable[[SeriesTree, SeriesRequest, Progress], tuple[RowBuilder, RowRunner]]


def real_parts(tree: SeriesTree, req: SeriesRequest, progress: Progress) -> tuple[RowBuilder, RowRunner]:
    builder = Builder(tree, req, progress)
    return builder, lambda row, row_dir: run_row(row, str(builder.build_dir), req, row_dir, progress)


class SeriesRun:
    def __init__(
        self,
        req: SeriesRequest,
        series: Series,
        repo: Path,
        tree: SeriesTree,
        out: Path,
        progress: Progress,
        parts: Parts = real_parts,
    ) -> None:
        self.req, self.series, self.repo, self.tree, self.out, self.progress = (
            req,
            series,
            repo,
            tree,
            out,
            progress,
        )
        self.rows: list[Row] = []
        self.builder, self.runner = parts(tree, req, progress)
        self.t0 = time.monotonic()
        self.with_apply = series.kind == "mbox"
        self.w1_ledger = W1Ledger()

    def info(self) -> dict[str, Any]:
        return {
            "request": {
                "argv": sys.argv[1:],
                "cwd": os.getcwd(),
                "src": str(self.repo),
                "what": self.req.what,
                "suites": list(self.req.run.suites),
                "filters": list(self.req.run.filters),
                "stop_on_first": self.req.stop_on_first,
                "only_last": self.req.only_last,
                "w1": self.req.w1,
                "strict": self.req.strict,
                "url_base": self.req.url_base,
            },
            "title": self.series.title,
            "kind": self.series.kind,
            "base": self.series.base,
            "kernel": self.kernel_label(),
            "worktree": str(self.tree.path),
            "build_dir": str(self.builder.build_dir),
            "seconds": round(time.monotonic() - self.t0, 1),
        }

    def kernel_label(self) -> str:
        cfg = "+".join([Path(self.req.config_base).name, *(f.stem for f in self.req.fragments)])
        return f"{self.builder.release or '?'} ({cfg}), QEMU x86-64"

    def title(self) -> str:
        n = len(self.series.patches)
        return f"{self.series.title or self.series.kind} ({n} patch{'es' if n != 1 else ''} on {self.series.base[:12]})"

    def save(self, finished: bool) -> None:
        props = {"base": self.series.base, "kernel": self.kernel_label()}
        strict = self.req.strict
        files = {
            "series.json": series_report.record(self.rows, self.info(), finished, strict, self.req.url_base),
            "matrix.txt": series_report.table(self.rows, self.with_apply, self.title(), strict=strict),
            "series.md": series_report.markdown(
                self.rows, self.with_apply, self.title(), self.kernel_label(), strict
            ),
            "junit.xml": series_report.junit(self.rows, self.with_apply, props, strict),
        }
        for name, text in files.items():
            reportio.write_text(self.out / name, text)
        if self.req.junit:
            reportio.write_text(self.req.junit, files["junit.xml"])

    def row_dir(self, row: Row) -> Path:
        return self.out / "rows" / f"{row.index:02d}"

    def test_row(self, row: Row) -> Row:
        self.progress(f"[{row.label}/{len(self.series.patches)}] {row.short} {row.subject}: building")
        row = self.builder.build(row, self.row_dir(row))
        if row.build is Step.OK and self.req.w1:
            files = row.files if row.index else sorted({f for p in self.series.patches for f in p.files})
            if any(f.endswith(".c") for f in files):
                self.progress(f"[{row.label}/{len(self.series.patches)}] W=1 on {len(files)} file(s)")
                before, after, new = self.w1_ledger.add(files, self.builder.w1(files, self.row_dir(row)))
                row = dataclasses.replace(
                    row,
                    w1_before=before if row.index else None,
                    w1_after=after,
                    w1_new=tuple(new) if row.index else (),
                )
        if row.build is Step.OK:
            self.progress(
                f"[{row.label}/{len(self.series.patches)}] built in {row.build_s:.0f}s; booting and running "
                f"{', '.join(self.req.run.suites)}"
            )
            row = self.runner(row, self.row_dir(row))
        self.progress(
            f"[{row.label}/{len(self.series.patches)}] build {row.build.value}, boot {row.boot.value}, "
            f"{len(row.tests)} tests ({row.build_s:.0f}s build, {row.run_s:.0f}s run)"
        )
        return row

    def run(self) -> int:
        s = self.series
        self.tree.reset_to(s.base)
        self.tree.touch(sorted({f for p in s.patches for f in p.files}))
        base_subject = git(self.repo, "show", "-s", "--format=%s", s.base).stdout.strip()
        base = self.test_row(Row(0, base_subject, s.base))
        self.rows.append(base)
        self.save(False)
        if base.build is Step.FAILED:
            raise InputError(f"the base {s.base[:12]} does not build: {base.build_error}")
        if base.boot is Step.FAILED:
            raise InputError(f"the base {s.base[:12]} does not boot: {base.boot_error}")
        stopped = ""
        for i, patch in enumerate(s.patches, 1):
            if stopped:
                self.rows.append(untested(i, patch, stopped))
                continue
            row = self.apply(i, patch)
            if row.apply is Step.FAILED:
                stopped = f"not applied: patch {i} did not apply"
            elif self.req.only_last and i < len(s.patches):
                row = dataclasses.replace(row, note="applied, not tested (--only-last)")
            else:
                row = self.test_row(row)
                if self.req.stop_on_first and breaks(row, self.rows, self.req.strict):
                    stopped = f"not tested: --stop-on-first after patch {i}"
            self.rows.append(row)
            self.save(False)
        self.save(True)
        return exit_code(self.rows, self.req.strict)

    def apply(self, i: int, patch: Patch) -> Row:
        row = Row(i, patch.subject, files=patch.files)
        self.progress(f"[{i}/{len(self.series.patches)}] applying {patch.origin}: {patch.subject}")
        got = self.tree.apply(patch, self.req.three_way)
        if not got.ok:
            self.progress(f"[{i}/{len(self.series.patches)}] does not apply:\n{got.message}")
            return dataclasses.replace(row, apply=Step.FAILED, apply_message=got.message)
        cp = self.tree.checkpatch(got.commit)
        if cp.ran and (cp.errors or cp.warnings or cp.checks):
            self.progress(
                f"[{i}/{len(self.series.patches)}] checkpatch: {cp.errors} error(s), "
                f"{cp.warnings} warning(s), {cp.checks} check(s)"
            )
        return dataclasses.replace(row, commit=got.commit, checkpatch=cp)


def default_out(series: Series) -> Path:
    return Path("harness-series") / f"{time.strftime('%Y%m%d-%H%M%S')}-{series.base[:12]}"


def run_series(req: SeriesRequest, progress: Progress, parts: Parts = real_parts) -> int:
    _check(req)
    repo = check_repo(req.src.expanduser(), "a series needs the tree's history")
    staging = cache_dir() / "series" / "incoming" / f"{os.getpid()}-{time.monotonic_ns()}"
    try:
        series = load_series(req, repo, staging)
        out = make_run_dir(req.out or default_out(series), None)
        if staging.exists():  # the messages, kept with the results
            (out / "patches").mkdir(exist_ok=True)
            for f in sorted(staging.iterdir()):
                os.replace(f, out / "patches" / f.name)
            series = dataclasses.replace(
                series,
                patches=tuple(
                    dataclasses.replace(p, path=out / "patches" / p.path.name) if p.path else p
                    for p in series.patches
                ),
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    home = cache_dir() / "series" / kbuild.tree_key(repo)
    progress(f"series dir: {out}")
    progress(f"{len(series.patches)} patch(es) on {series.base[:12]}; worktree {home / 'worktree'}")
    with locked(home / "lock"):
        tree = SeriesTree(repo, home / "worktree")
        sr = SeriesRun(req, series, repo, tree, out, progress, parts)
        try:
            return sr.run()  # SIGTERM arrives as Ctrl-C (cli: signals.sigterm_as_interrupt)
        except KeyboardInterrupt as e:
            code = signals.exit_code(e)
            _finish(sr, "interrupted")
            print(f"harness: {signals.reason(code)}", file=sys.stderr)
            return code
        except HarnessError:
            _finish(sr, "stopped by an error")
            raise
        finally:
            print(series_report.table(sr.rows, sr.with_apply, sr.title(), strict=req.strict), end="")
            print(f"series dir: {out}")


def _finish(sr: SeriesRun, why: str) -> None:
    """Rows not reached get a note, and the reports are written with what there is."""
    done = {r.index for r in sr.rows}
    if sr.rows:
        sr.rows += [
            untested(i, p, f"not reached: {why}") for i, p in enumerate(sr.series.patches, 1) if i not in done
        ]
    sr.save(False)


def untested(index: int, patch: Patch, note: str) -> Row:
    """The row of a patch that was not applied (an earlier one failed, or the series stopped)."""
    return Row(index, patch.subject, patch.commit, patch.files, apply=Step.NOT_RUN, note=note)
