"""Which expectation rules the runs exercised, which they could not, and which are stale. Pure.

`harness expectations [RUN_DIR ...]` (expreport_cmd.py reads the files) asks, for every rule of
the CURRENT expectations file, what it decides in the given results: each case on each kernel is
judged again with today's rules (the last matching rule wins, as in expect.py), so a rule's
line is today's line even when the file changed since the run. The verdict is recomputed from
what the test did, which is read back from the recorded verdict and the expectation it was
judged against (an XPASS ran OK, an XFAIL under a fail rule ran NOT_OK, and so on).

A rule is reported as:
  * deciding: the kernels and cases it decided, with the verdicts it gives them now;
  * never applied, and why: its kernel range or config did not occur in the runs (it needs
    another kernel: not stale), every case it covers is decided by a later rule (overridden),
    its cases were not run, or a glob matches no known case id (stale);
  * UNVERIFIED: its comment block (the comment lines right above it) says so;
  * disagreeing: an XPASS under a fail rule, or a case a skip rule covers that ran.

Without results only the static part is left: which known case ids each rule's globs match.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.judge.expect import UNEXPECTED_SKIP, Rule, RuleSet, judge
from harness.model import Kernel, KernelVersion, Outcome, Verdict

KSELFTEST_PREFIX = "kselftest."  # their ids are known only after a run (suites.list_ids)


@dataclass(frozen=True)
class ObservedCase:
    id: str
    outcomes: tuple[Outcome, ...]  # one per run: what the test itself did


@dataclass(frozen=True)
class ObservedKernel:
    """One kernel of one run (or matrix) directory."""

    label: str
    version: KernelVersion | None  # upstream; None: rules cannot be evaluated on it
    config: Mapping[str, str] | None  # the kernel's .config; None when the run dir has none
    cases: tuple[ObservedCase, ...]

    @property
    def name(self) -> str:
        return str(self.version) if self.version is not None else self.label


@dataclass(frozen=True)
class RuleReport:
    source: str  # "FILE:LINE"
    match: tuple[str, ...]
    expect: str
    kernel: str  # the range spec, "" for any kernel
    config: tuple[tuple[str, str], ...]
    known_ids: int = -1  # known case ids its globs match; -1 when the ids are unknown
    dead_globs: tuple[str, ...] = ()  # globs that match no known case id
    decided_cases: int = 0  # distinct case ids it decided in the runs
    decided_on: tuple[str, ...] = ()  # kernels (upstream versions) where it decided something
    verdicts: tuple[tuple[str, int], ...] = ()  # verdict -> case runs, judged by this rule now
    never_applied: str = ""  # why it decided nothing in the runs ("" when it did, or no runs)
    stale: bool = False  # a glob matches no known case id
    unverified: str = ""  # the comment line that says UNVERIFIED
    disagreed: tuple[str, ...] = ()  # "XPASS on 6.12.118: cow.x.y"


@dataclass(frozen=True)
class Report:
    expectations: str
    runs: tuple[str, ...]
    kernels: tuple[str, ...]  # the kernels judged, oldest first
    unjudged: tuple[str, ...]  # kernels without an upstream version: no rule evaluated on them
    no_config: tuple[str, ...]  # kernels without a .config: rules with a config condition skip them
    known_ids: int  # -1 when the static id list was not available
    rules: tuple[RuleReport, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = ()

    @property
    def stale(self) -> tuple[RuleReport, ...]:
        return tuple(r for r in self.rules if r.stale)

    @property
    def disagreed(self) -> tuple[RuleReport, ...]:
        return tuple(r for r in self.rules if r.disagreed)

    @property
    def exit_code(self) -> int:
        return 1 if self.stale or self.disagreed else 0


# ---- reading back what a test did -------------------------------------------------------------


def outcome_of(verdict: Verdict, expect: str, reason: str = "") -> Outcome:
    """What the test did, from the verdict it was given under expectation `expect`."""
    if verdict in (Verdict.PASS, Verdict.XPASS):
        return Outcome.OK
    if verdict is Verdict.FAIL:
        return Outcome.NOT_OK
    if verdict is Verdict.XFAIL:  # under a pass or skip expectation the test itself said XFAIL
        return Outcome.NOT_OK if expect == "fail" else Outcome.XFAIL
    if verdict is Verdict.SKIP:
        return Outcome.SKIP
    if verdict is Verdict.ERROR and reason.startswith((UNEXPECTED_SKIP, f"TODO: {UNEXPECTED_SKIP}")):
        return Outcome.SKIP  # a skip no rule explained (judge_case)
    return Outcome.ERROR


# ---- the report --------------------------------------------------------------------------------


def comment_blocks(text: str) -> dict[int, str]:
    """line number -> the comment lines directly above it (no blank line between), joined."""
    out: dict[int, str] = {}
    block: list[str] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        s = raw.strip()
        if s.startswith("#"):
            block.append(s.lstrip("#").strip())
            continue
        if block and s:
            out[n] = "\n".join(block)
        block = []
    return out


def _line(source: str) -> int:
    tail = source.rpartition(":")[2]
    return int(tail) if tail.isdigit() else 0


def _unverified(comment: str) -> str:
    return next((ln for ln in comment.splitlines() if "UNVERIFIED" in ln), "")


def _kernel_of(k: ObservedKernel) -> Kernel:
    assert k.version is not None
    return Kernel(
        spec=k.label,
        bzimage=Path(),
        release="",
        version=k.version,
        modules_dir=None,
        config=dict(k.config or {}),
    )


def _applies(rule: Rule, k: ObservedKernel, kern: Kernel, case_id: str) -> bool:
    if rule.config and k.config is None:
        return False  # the config is unknown: do not guess
    return rule.matches(case_id, kern)


def _globs_hit(rule: Rule, ids: Sequence[str]) -> tuple[int, tuple[str, ...]]:
    hit: set[str] = set()
    dead: list[str] = []
    for g in rule.match:
        m = {i for i in ids if fnmatch.fnmatchcase(i, g)}
        if not m and not g.startswith(KSELFTEST_PREFIX):
            dead.append(g)
        hit |= m
    return len(hit), tuple(dead)


@dataclass
class _Tally:
    cases: set[str] = field(default_factory=set)
    kernels: list[str] = field(default_factory=list)
    verdicts: Counter[str] = field(default_factory=Counter)
    matched: bool = False  # matched some case on some kernel (even if a later rule won)
    overridden_by: list[str] = field(default_factory=list)
    disagreed: list[str] = field(default_factory=list)


def _disagreement(rule: Rule, verdict: Verdict, outcome: Outcome) -> str:
    if rule.expect == "fail" and verdict is Verdict.XPASS:
        return "XPASS"
    if rule.expect == "skip" and outcome in (Outcome.OK, Outcome.NOT_OK):
        return f"ran ({verdict.value})"
    return ""


def _tally(rules: RuleSet, kernels: Sequence[ObservedKernel]) -> dict[str, _Tally]:
    tallies = {r.source: _Tally() for r in rules.rules}
    for k in kernels:
        kern = _kernel_of(k)
        for case in k.cases:
            hits = [r for r in rules.rules if _applies(r, k, kern, case.id)]
            if not hits:
                continue
            winner = hits[-1]
            for r in hits[:-1]:
                tallies[r.source].matched = True
                if winner.source not in tallies[r.source].overridden_by:
                    tallies[r.source].overridden_by.append(winner.source)
            t = tallies[winner.source]
            t.matched = True
            t.cases.add(case.id)
            if k.name not in t.kernels:
                t.kernels.append(k.name)
            for o in case.outcomes:
                v = judge(o, winner.expectation())
                t.verdicts[v.value] += 1
                why = _disagreement(winner, v, o)
                if why:
                    t.disagreed.append(f"{why} on {k.name}: {case.id}")
    return tallies


def _range_text(kernels: Sequence[ObservedKernel]) -> str:
    names = [k.name for k in kernels]
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"


def _why_never(
    rule: Rule, t: _Tally, judged: Sequence[ObservedKernel], all_dead: bool, ids_complete: bool
) -> str:
    if all_dead:
        if ids_complete:
            return "no known case id matches its globs (stale glob)"
        return "its globs match no case id in these runs"
    if t.matched:
        return "every case it matches is decided by a later rule: " + ", ".join(t.overridden_by)
    in_range = [k for k in judged if rule.kernel is None or k.version in rule.kernel]
    if not in_range:
        return f"needs kernel {rule.kernel.spec if rule.kernel else ''}; these runs had {_range_text(judged)}"
    if rule.config:
        want = ", ".join(f"{key}={val}" for key, val in rule.config)
        known = [k for k in in_range if k.config is not None]
        if not known:
            return f"needs {want}; the .config of {', '.join(k.name for k in in_range)} is not in the runs"
        if not any(_config_ok(rule, k) for k in known):
            return f"needs {want}; no kernel in its range had it in these runs"
    return "the cases it matches were not run on a kernel in its range"


def _config_ok(rule: Rule, k: ObservedKernel) -> bool:
    """The rule's config condition holds on k (whatever the case)."""
    kern = _kernel_of(k)
    probe = Rule(match=("*",), expect=rule.expect, source=rule.source, config=rule.config)
    return probe.matches("x", kern)


def build(
    rules: RuleSet,
    comments: Mapping[int, str],
    kernels: Sequence[ObservedKernel],
    known_ids: Sequence[str] | None,
    runs: Sequence[str] = (),
) -> Report:
    """The report for `rules` over the observed kernels (none: the static part only).

    `comments` maps a rule's line to the comment block above it (comment_blocks); `known_ids`
    are the case ids the suites list (None when they could not be listed: then the ids in the
    runs are all that is known)."""
    judged = sorted(
        (k for k in kernels if k.version is not None),
        key=lambda k: k.version.as_tuple() if k.version else (0, 0, 0),
    )
    run_ids = sorted({c.id for k in kernels for c in k.cases})
    ids: Sequence[str] | None = (
        sorted(set(known_ids or ()) | set(run_ids)) if (known_ids is not None or run_ids) else None
    )
    tallies = _tally(rules, judged)
    out: list[RuleReport] = []
    for r in rules.rules:
        t = tallies[r.source]
        n_known, dead = _globs_hit(r, ids) if ids is not None else (-1, ())
        all_dead = ids is not None and bool(dead) and len(dead) == len(r.match)
        never = ""
        if judged and not t.cases:
            never = _why_never(r, t, judged, all_dead, known_ids is not None)
        out.append(
            RuleReport(
                source=r.source,
                match=r.match,
                expect=r.expect,
                kernel=r.kernel.spec if r.kernel else "",
                config=r.config,
                known_ids=n_known,
                dead_globs=dead,
                decided_cases=len(t.cases),
                decided_on=tuple(t.kernels),
                verdicts=tuple(sorted(t.verdicts.items())),
                never_applied=never,
                stale=bool(dead) and known_ids is not None,
                unverified=_unverified(comments.get(_line(r.source), "")),
                disagreed=tuple(t.disagreed),
            )
        )
    notes: list[str] = []
    if not kernels:
        notes.append("no runs given: only the rules' globs against the known case ids")
    if known_ids is None:
        notes.append("the suites' case ids could not be listed: globs checked against the runs' ids only")
    return Report(
        expectations=rules.path,
        runs=tuple(runs),
        kernels=tuple(k.name for k in judged),
        unjudged=tuple(k.label for k in kernels if k.version is None),
        no_config=tuple(k.name for k in judged if k.config is None),
        known_ids=len(known_ids) if known_ids is not None else -1,
        rules=tuple(out),
        notes=tuple(notes),
    )


# ---- writers -----------------------------------------------------------------------------------


def _rule_head(r: RuleReport) -> str:
    cond = [f"kernel {r.kernel}"] if r.kernel else []
    cond += [f"{k}={v}" for k, v in r.config]
    return f"{r.source}  {' '.join(r.match)}  expect {r.expect}" + (f"  ({', '.join(cond)})" if cond else "")


def _static(r: RuleReport) -> str:
    if r.known_ids < 0:
        return "case ids unknown"
    dead = f"; no known id matches {', '.join(r.dead_globs)}" if r.dead_globs else ""
    return f"matches {r.known_ids} known case id{'s' if r.known_ids != 1 else ''}{dead}"


def _decided(r: RuleReport) -> str:
    counts = " ".join(f"{v} {n}" for v, n in r.verdicts)
    return f"decided {r.decided_cases} case{'s' if r.decided_cases != 1 else ''} on {', '.join(r.decided_on)}: {counts}"


def text(rep: Report, max_listed: int = 5) -> str:
    """The report as printed by `harness expectations`."""
    n = len(rep.rules)
    lines = [f"expectations: {rep.expectations} ({n} rule{'s' if n != 1 else ''})"]
    if rep.runs:
        lines.append(
            f"runs: {', '.join(rep.runs)}; kernels: {', '.join(rep.kernels) or '(none with a version)'}"
        )
    if rep.unjudged:
        lines.append(f"no upstream version, so not judged: {', '.join(rep.unjudged)}")
    if rep.no_config:
        lines.append(
            f"no .config in the run dir, so config conditions not evaluated on: {', '.join(rep.no_config)}"
        )
    lines += [f"note: {x}" for x in rep.notes]
    with_runs = bool(rep.kernels)
    lines += [
        "",
        "Rules that decided cases:" if with_runs else "Rules (static: globs against the known case ids):",
    ]
    for r in rep.rules:
        if with_runs and not r.decided_cases:
            continue
        lines += [f"  {_rule_head(r)}", f"      {_decided(r) if with_runs else _static(r)}"]
    if with_runs:
        never = [r for r in rep.rules if r.never_applied]
        lines += ["", f"Never applied in these runs ({len(never)}):"]
        lines += [f"  {_rule_head(r)}\n      {r.never_applied}" for r in never] or ["  (none)"]
    stale = rep.stale
    lines += ["", f"Stale globs, matching no known case id ({len(stale)}):"]
    lines += [f"  {r.source}  {', '.join(r.dead_globs)}" for r in stale] or ["  (none)"]
    unv = [r for r in rep.rules if r.unverified]
    lines += ["", f"UNVERIFIED in the comment above the rule ({len(unv)}):"]
    lines += [f"  {_rule_head(r)}\n      # {r.unverified}" for r in unv] or ["  (none)"]
    if with_runs:
        dis = rep.disagreed
        lines += ["", f"Disagreed with the runs ({len(dis)}):"]
        for r in dis:
            lines.append(f"  {_rule_head(r)}")
            lines += [f"      {d}" for d in r.disagreed[:max_listed]]
            if len(r.disagreed) > max_listed:
                lines.append(f"      ... and {len(r.disagreed) - max_listed} more")
        if not dis:
            lines.append("  (none)")
    return "\n".join(lines)


def as_json(rep: Report) -> dict[str, object]:
    """The same report as a JSON-ready dict (`--json`)."""
    d = asdict(rep)
    for r in d["rules"]:
        r["verdicts"] = dict(r["verdicts"])
        r["config"] = dict(r["config"])
    d["stale"] = [r.source for r in rep.stale]
    d["disagreed"] = [r.source for r in rep.disagreed]
    d["exit_code"] = rep.exit_code
    return d
