"""`harness series` decisions (pure): what each row of a patch series did, what changed from
the row before, what counts as broken, and which compiler warnings a patch added.

A series is rows: the base, then one per patch. Each row has steps (apply, build, boot) and the
verdicts of the tests it ran. Whether a test is good or bad is read from the test's own outcome
(ok / not ok) and from the kernel (a case during which the kernel WARNed is FAIL though it said
ok), not from expectations.yaml alone: a patch that makes an XFAIL case pass fixed it, though its
verdict turns XPASS. A patch *breaks* a step or a test when it is bad in that row and was good in
the row before (the last row where it ran); it *fixes* it the other way round.

The series fails (exit 1) when any patch row does not apply, build or boot, or has a test bad
that was good at the base or in the row before; the cells that say so are the JUnit failures.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from harness.model import Outcome, Verdict


class Step(str, enum.Enum):
    OK = "ok"
    FAILED = "failed"
    NOT_RUN = "not run"  # an earlier step failed, or --stop-on-first / --only-last left it out


class Quality(str, enum.Enum):
    GOOD = "good"
    BAD = "bad"
    NEUTRAL = "neutral"  # skipped, or a directive (XFAIL/TODO) the test gave itself


class Mark(str, enum.Enum):
    NONE = ""
    BROKE = "broke"
    FIXED = "fixed"
    CHANGED = "changed"  # verdict changed, neither good→bad nor bad→good (e.g. PASS→SKIP)


@dataclass(frozen=True)
class Cell:
    """One test in one row."""

    verdict: Verdict
    outcome: Outcome
    reason: str = ""

    @property
    def quality(self) -> Quality:
        if self.outcome in (Outcome.NOT_OK, Outcome.ERROR) or self.verdict in (Verdict.ERROR,):
            return Quality.BAD
        if self.outcome is Outcome.OK:
            # ok but FAIL: the kernel reported (WARN, BUG...) while the case ran.
            return Quality.BAD if self.verdict is Verdict.FAIL else Quality.GOOD
        return Quality.NEUTRAL


@dataclass(frozen=True)
class CompilerWarning:
    """A compiler warning, keyed without its line and column (a patch moves lines)."""

    path: str  # relative to the tree
    text: str  # "unused variable 'x' [-Wunused-variable]"
    line: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.path, self.text)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: warning: {self.text}"


@dataclass(frozen=True)
class Checkpatch:
    """What the tree's scripts/checkpatch.pl said about one patch. `note` instead of counts when
    it could not run (no script in the tree, no perl)."""

    errors: int = 0
    warnings: int = 0
    checks: int = 0
    lines: tuple[str, ...] = ()  # the first ERROR:/WARNING:/CHECK: lines
    note: str = ""

    @property
    def ran(self) -> bool:
        return not self.note

    @property
    def cell(self) -> str:
        if not self.ran:
            return "-"
        if not (self.errors or self.warnings or self.checks):
            return "ok"
        return " ".join(
            f"{n}{k}" for n, k in ((self.errors, "E"), (self.warnings, "W"), (self.checks, "C")) if n
        )


@dataclass(frozen=True)
class Row:
    """The base (index 0) or patch `index` of the series."""

    index: int
    subject: str
    commit: str = ""  # full hash in our worktree ("" when the patch did not apply)
    files: tuple[str, ...] = ()  # what the patch touched
    apply: Step = Step.OK
    apply_message: str = ""  # git am's own words when it failed
    build: Step = Step.NOT_RUN
    build_error: str = ""
    warnings: tuple[CompilerWarning, ...] = ()  # every warning of this row's (incremental) build
    new_warnings: tuple[CompilerWarning, ...] = ()  # in the files this patch touched, not seen before
    boot: Step = Step.NOT_RUN
    boot_error: str = ""
    tests: Mapping[str, Cell] = field(default_factory=dict)
    build_s: float = 0.0
    run_s: float = 0.0
    run_dir: str = ""
    note: str = ""  # why steps were not run ("--only-last", "stopped: patch 2 broke the build")
    checkpatch: Checkpatch | None = None  # None: not a patch row, or not applied
    w1_before: int | None = None  # W=1 warnings in the files this patch touched, before it (--w1)
    w1_after: int | None = None  # ... and with it
    w1_new: tuple[CompilerWarning, ...] = ()  # the W=1 warnings it added

    @property
    def w1_cell(self) -> str:
        if self.w1_after is None:
            return "-"
        if self.w1_before is None:
            return str(self.w1_after)
        delta = f" +{len(self.w1_new)}" if self.w1_new else ""
        return f"{self.w1_before}->{self.w1_after}{delta}"

    @property
    def label(self) -> str:
        return "base" if self.index == 0 else f"{self.index}"

    @property
    def short(self) -> str:
        return self.commit[:12]


@dataclass(frozen=True)
class Change:
    """What row `row` did to one column, relative to the last row where the column had a value."""

    row: int
    column: str  # "apply", "build", "boot" or a test id
    mark: Mark
    before: str
    after: str


def step_quality(s: Step) -> Quality:
    return {Step.OK: Quality.GOOD, Step.FAILED: Quality.BAD}.get(s, Quality.NEUTRAL)


def _mark(before: Quality, after: Quality, same: bool) -> Mark:
    if before is Quality.GOOD and after is Quality.BAD:
        return Mark.BROKE
    if before is Quality.BAD and after is Quality.GOOD:
        return Mark.FIXED
    return Mark.NONE if same else Mark.CHANGED


def changes(rows: Sequence[Row]) -> list[Change]:
    """Every change between a row and the last earlier row where the same column had a value.
    Steps that were not run have no value; a test a row did not run has none either."""
    out: list[Change] = []
    last_step: dict[str, Step] = {}
    last_cell: dict[str, Cell] = {}
    for row in rows:
        for name, step in (("apply", row.apply), ("build", row.build), ("boot", row.boot)):
            if step is Step.NOT_RUN:
                continue
            prev = last_step.get(name)
            if prev is not None and prev is not step:
                out.append(
                    Change(
                        row.index,
                        name,
                        _mark(step_quality(prev), step_quality(step), False),
                        prev.value,
                        step.value,
                    )
                )
            last_step[name] = step
        for tid, cell in row.tests.items():
            pc = last_cell.get(tid)
            if pc is not None and (pc.verdict is not cell.verdict or pc.quality is not cell.quality):
                m = _mark(pc.quality, cell.quality, pc.verdict is cell.verdict)
                out.append(Change(row.index, tid, m, pc.verdict.value, cell.verdict.value))
            last_cell[tid] = cell
    return out


def changed_tests(rows: Sequence[Row]) -> list[str]:
    """The test columns of the matrix: tests whose verdict changed anywhere, in first-seen order."""
    changed = {c.column for c in changes(rows)} - {"apply", "build", "boot"}
    order: dict[str, None] = {}
    for row in rows:
        for tid in row.tests:
            if tid in changed:
                order[tid] = None
    return list(order)


@dataclass(frozen=True)
class Problem:
    """Something a patch row got wrong: a JUnit failure and a reason for exit 1. A soft one
    (checkpatch errors) fails the series only with --strict; it is reported either way."""

    row: int
    column: str
    text: str
    soft: bool = False


def problems(rows: Sequence[Row]) -> list[Problem]:
    """What the patch rows broke. A test counts when it is bad in a row and was good at the
    base or in the row before (so a test broken by patch 2 is also a problem of patch 3 if it is
    still bad there: the series is not bisectable through it)."""
    if not rows:
        return []
    base = rows[0].tests
    marks = {(c.row, c.column): c for c in changes(rows)}
    out: list[Problem] = []
    for row in rows[1:]:
        if row.apply is Step.FAILED:
            out.append(Problem(row.index, "apply", f"does not apply: {first_line(row.apply_message)}"))
        if row.build is Step.FAILED:
            out.append(Problem(row.index, "build", f"does not build: {row.build_error}"))
        if row.boot is Step.FAILED:
            out.append(Problem(row.index, "boot", f"does not boot: {row.boot_error}"))
        for tid, cell in row.tests.items():
            if cell.quality is not Quality.BAD:
                continue
            ch = marks.get((row.index, tid))
            at_base = base.get(tid)
            if ch is not None and ch.mark is Mark.BROKE:
                out.append(Problem(row.index, tid, f"broken by this patch: {ch.before} -> {ch.after}"))
            elif at_base is not None and at_base.quality is Quality.GOOD:
                out.append(
                    Problem(
                        row.index,
                        tid,
                        f"still broken: {at_base.verdict.value} at base, {cell.verdict.value} here",
                    )
                )
        cp = row.checkpatch
        if cp is not None and cp.ran and cp.errors:
            first = next((ln for ln in cp.lines if ln.startswith("ERROR:")), "")
            out.append(
                Problem(
                    row.index,
                    "checkpatch",
                    f"{cp.errors} checkpatch error(s)" + (f": {first}" if first else ""),
                    soft=True,
                )
            )
    return out


def failing(probs: Sequence[Problem], strict: bool) -> list[Problem]:
    """The problems that fail the series: all with --strict, else the hard ones."""
    return [p for p in probs if strict or not p.soft]


def exit_code(rows: Sequence[Row], strict: bool = False) -> int:
    return 1 if failing(problems(rows), strict) else 0


def breaks(row: Row, rows: Sequence[Row], strict: bool = False) -> bool:
    """Did this patch row break something (for --stop-on-first)?"""
    return any(p.row == row.index for p in failing(problems([*rows[: row.index], row]), strict))


# ---- checkpatch and patchwork checks -------------------------------------------------------------

_CP_TOTAL = re.compile(
    r"^total: (\d+) errors?, (\d+) warnings?, (?:(\d+) checks?, )?\d+ lines? checked", re.MULTILINE
)
_CP_LINE = re.compile(r"^(?:\S+:\d+: )?(ERROR|WARNING|CHECK):")
CHECKPATCH_LINES = 5


def parse_checkpatch(output: str) -> Checkpatch:
    """checkpatch.pl's report: the counts from its "total:" line, the first findings (pure)."""
    m = _CP_TOTAL.search(output)
    if m is None:
        last = [ln for ln in output.splitlines() if ln.strip()][-1:] or ["no output"]
        return Checkpatch(note=f"checkpatch.pl gave no total ({last[0][:200]})")
    found = [ln.strip() for ln in output.splitlines() if _CP_LINE.match(ln.strip())]
    return Checkpatch(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), tuple(found[:CHECKPATCH_LINES]))


def patch_state(row: Row, probs: Sequence[Problem], strict: bool) -> tuple[str, str]:
    """A patchwork check for one patch row: (state, one-line description) (pure). fail: a hard
    problem (or a soft one with --strict); warning: checkpatch findings, new compiler or W=1
    warnings, or a soft problem; success otherwise."""
    mine = [p for p in probs if p.row == row.index]
    hard = failing(mine, strict)
    if row.apply is Step.NOT_RUN and not row.commit and row.build is Step.NOT_RUN:
        return "warning", f"not tested: {row.note or 'not applied'}"
    if hard:
        more = f" (+{len(hard) - 1} more)" if len(hard) > 1 else ""
        return "fail", f"{hard[0].column}: {hard[0].text}"[:200] + more
    notes = []
    cp = row.checkpatch
    if cp is not None and cp.ran and (cp.errors or cp.warnings or cp.checks):
        notes.append(f"checkpatch {cp.errors} error(s), {cp.warnings} warning(s), {cp.checks} check(s)")
    if row.new_warnings:
        notes.append(f"{len(row.new_warnings)} new compiler warning(s)")
    if row.w1_new:
        notes.append(f"{len(row.w1_new)} new W=1 warning(s)")
    if notes:
        return "warning", "; ".join(notes)
    what = "builds" if row.build is Step.OK else "applies"
    if row.boot is Step.OK:
        what = f"builds, boots, {len(row.tests)} tests as before"
    return "success", what


def first_line(text: str) -> str:
    """git's first error line (or its first line)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("error:", "fatal:")):
            return ln
    return lines[0] if lines else "(no message)"


# ---- compiler warnings -------------------------------------------------------------------------

_WARNING = re.compile(r"^(?P<path>[^\s:][^:]*):(?P<line>\d+):(?:(?P<col>\d+):)? warning: (?P<text>.*?)\s*$")
_COMPILED = re.compile(r"^\s+CC\s+(?:\[M\]\s+)?(\S+)\.o\s*$")


def _relative(path: str, tree_prefixes: Sequence[str]) -> str:
    for prefix in tree_prefixes:
        p = prefix.rstrip("/") + "/"
        if path.startswith(p):
            return path[len(p) :]
    while path.startswith("../"):  # O= dir inside the tree: kbuild says ../mm/gup.c
        path = path[3:]
    return path.removeprefix("./")


def parse_warnings(log: str, tree_prefixes: Sequence[str] = ()) -> list[CompilerWarning]:
    """gcc/clang warnings in a build log, paths made relative to the tree, duplicates (a header
    warning repeated by every file that includes it) kept once (pure)."""
    seen: dict[tuple[str, str, int], CompilerWarning] = {}
    for line in log.splitlines():
        m = _WARNING.match(line)
        if m:
            w = CompilerWarning(
                _relative(m.group("path"), tree_prefixes), m.group("text"), int(m.group("line"))
            )
            seen.setdefault((w.path, w.text, w.line), w)
    return list(seen.values())


def compiled_sources(log: str) -> set[str]:
    """The C files a build log shows compiled ("  CC      mm/gup.o" → mm/gup.c) (pure)."""
    return {m.group(1) + ".c" for line in log.splitlines() if (m := _COMPILED.match(line))}


class WarningLedger:
    """Which warnings each file had when it was last compiled, across the rows of a series.

    A build is incremental, so a row's log only shows the files it recompiled; a file that was
    not recompiled keeps what it had. The base row is built after touching every file the series
    changes, so each of them has a known set before the first patch."""

    def __init__(self) -> None:
        self.known: dict[str, set[str]] = {}

    def add(
        self, warnings: Iterable[CompilerWarning], compiled: set[str], touched: Sequence[str]
    ) -> list[CompilerWarning]:
        """Take a row's warnings; returns those in `touched` files that the file did not have
        the last time it was compiled (for the base row, pass no touched files)."""
        now: dict[str, set[str]] = {}
        for w in warnings:
            now.setdefault(w.path, set()).add(w.text)
        new = [w for w in warnings if w.path in touched and w.text not in self.known.get(w.path, set())]
        for path in compiled | set(now):
            self.known[path] = now.get(path, set())
        return new


class W1Ledger:
    """W=1 warnings per C file (distinct texts) as last compiled with W=1 (`--w1`). The base row
    compiles every C file the series touches; each patch row then those it touched, and is
    compared with what the ledger knew before it (a file the patch adds had none)."""

    def __init__(self) -> None:
        self.known: dict[str, set[str]] = {}

    def add(
        self, files: Iterable[str], warnings: Iterable[CompilerWarning]
    ) -> tuple[int | None, int | None, list[CompilerWarning]]:
        """(before, after, new) for these files; (None, None, []) when none is a C file."""
        cfiles = sorted({f for f in files if f.endswith(".c")})
        if not cfiles:
            return None, None, []
        before = sum(len(self.known.get(f, ())) for f in cfiles)
        now: dict[str, set[str]] = {f: set() for f in cfiles}
        new: dict[tuple[str, str], CompilerWarning] = {}
        for w in warnings:
            if w.path in now:
                now[w.path].add(w.text)
                if w.text not in self.known.get(w.path, set()):
                    new.setdefault(w.key, w)
        self.known.update(now)
        return before, sum(len(v) for v in now.values()), list(new.values())
