"""The bisect decision core (pure): what one step's runs say, where to look next, how sure we are.

A bisect is a loop over the ordinary pipeline (prepare a kernel → `runner.execute` with only the
named tests → decide). This module holds everything in that loop that is a decision, with no I/O,
so it is tested with fakes: harness/bisect/bisect_cmd.py drives it with real kernels, and git bisect
(harness/bisect/bisect_git.py) picks commits in a tree.

Judging a step. Each named test in each run is good, bad or undecided:

* `outcome` (default): the raw result the test reported, ignoring expectations.yaml. Bisecting
  a behaviour change across versions is exactly where the version-keyed expectations move under
  you (6.1 expects O_DIRECT to fail, 6.12 expects it to pass: both are "as expected"), so the
  verdict cannot tell the two kernels apart but the outcome can. ok → good; not ok, the test's
  own XFAIL, ERROR (crashed, hung) → bad; SKIP/TODO → undecided.
* `verdict`: PASS/XFAIL → good; FAIL/XPASS/ERROR/FLAKY → bad; SKIP → undecided. For bisecting a
  regression against the expectations, and the only mode in which a kernel WARNING during the
  test counts (--kernel-reports fail turns such a case into FAIL).

A run is bad when any named test is bad, good when every named test is good, else undecided.
Only the named tests count: anything else in the run cannot steer the bisect.

A step (N runs, `--runs N`) is good when all N runs are good, bad when at least `threshold` runs
are bad, else skip. The default threshold is syzbot's rule (since 2024): max(2, ceil(N/6)) for
N > 1 (1 for a single run), so one bad run among good ones is a flake, not a verdict: such a step
is skipped as flaky (`flaky()`), and its runs count in the flake rate of the confidence. A build
failure is skip; a boot failure is skip, or bad with `bisect_boot` (for bisecting a boot
regression).

Sides. A bisect looks for the first candidate in the "new" state. Normally old = good, new = bad
(first bad = the regression); with `reverse`, old = bad, new = good (first good = the fix).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class Judge(str, enum.Enum):
    OUTCOME = "outcome"
    VERDICT = "verdict"


class Status(str, enum.Enum):
    """How far one step got."""

    RAN = "ran"  # at least one run booted and ran the tests
    BUILD_FAILED = "build-failed"  # the kernel could not be built (or fetched)
    BOOT_FAILED = "boot-failed"  # no run got a working guest


class Decision(str, enum.Enum):
    GOOD = "good"
    BAD = "bad"
    SKIP = "skip"


class Side(str, enum.Enum):
    OLD = "old"
    NEW = "new"


_GOOD_OUTCOMES = frozenset({"ok"})
_BAD_OUTCOMES = frozenset({"not_ok", "xfail", "error"})
_GOOD_VERDICTS = frozenset({"PASS", "XFAIL"})
_BAD_VERDICTS = frozenset({"FAIL", "XPASS", "ERROR", "FLAKY"})


@dataclass(frozen=True)
class CaseObs:
    """One named test in one run, as it came back (model.Outcome / model.Verdict values)."""

    id: str
    outcome: str
    verdict: str
    reason: str = ""


@dataclass(frozen=True)
class RunObs:
    """One run of the named tests on one kernel. boot_failed: the guest never came up."""

    cases: tuple[CaseObs, ...] = ()
    boot_failed: bool = False
    detail: str = ""  # why the boot failed
    run_dir: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class StepResult:
    """What the oracle found for one candidate: its status and every run's observations."""

    status: Status
    runs: tuple[RunObs, ...] = ()
    detail: str = ""  # why the build (or fetch, or boot) failed
    prepare_s: float = 0.0  # build or download
    run_s: float = 0.0
    build_hash: str = ""  # "vmlinux:<sha256>" of a reproducible build (git bisects), for no-op culprits


@dataclass(frozen=True)
class Policy:
    tests: tuple[str, ...]
    runs: int = 1
    bad_threshold: int | None = None  # None: max(2, ceil(runs / 6)), 1 for one run
    judge: Judge = Judge.OUTCOME
    bisect_boot: bool = False
    reverse: bool = False

    @property
    def threshold(self) -> int:
        if self.bad_threshold is not None:
            return self.bad_threshold
        return 1 if self.runs == 1 else max(2, math.ceil(self.runs / 6))

    def problems(self) -> list[str]:
        """What is wrong with this policy, as messages for the user (empty: fine)."""
        out = []
        if not self.tests:
            out.append("--test: name at least one test id")
        if self.runs < 1:
            out.append(f"--runs {self.runs}: must be 1 or more")
        if self.bad_threshold is not None and not 1 <= self.bad_threshold <= self.runs:
            out.append(f"--bad-threshold {self.bad_threshold}: must be between 1 and --runs ({self.runs})")
        return out

    @property
    def old_decision(self) -> Decision:
        return Decision.BAD if self.reverse else Decision.GOOD

    @property
    def new_decision(self) -> Decision:
        return Decision.GOOD if self.reverse else Decision.BAD


# ---- judging --------------------------------------------------------------------------------


def case_state(c: CaseObs, judge: Judge) -> Decision:
    if judge is Judge.OUTCOME:
        if c.outcome in _GOOD_OUTCOMES:
            return Decision.GOOD
        return Decision.BAD if c.outcome in _BAD_OUTCOMES else Decision.SKIP
    if c.verdict in _GOOD_VERDICTS:
        return Decision.GOOD
    return Decision.BAD if c.verdict in _BAD_VERDICTS else Decision.SKIP


def run_state(run: RunObs, policy: Policy) -> Decision:
    """One run: bad if any named test is bad, good if all are good, else skip."""
    if run.boot_failed:
        return Decision.BAD if policy.bisect_boot else Decision.SKIP
    by_id = {c.id: c for c in run.cases}
    states = [case_state(by_id[t], policy.judge) if t in by_id else Decision.SKIP for t in policy.tests]
    if Decision.BAD in states:
        return Decision.BAD
    return Decision.GOOD if all(s is Decision.GOOD for s in states) else Decision.SKIP


def decide(step: StepResult, policy: Policy) -> Decision:
    if step.status is Status.BUILD_FAILED:
        return Decision.SKIP
    if step.status is Status.BOOT_FAILED and not step.runs:
        return Decision.BAD if policy.bisect_boot else Decision.SKIP
    states = [run_state(r, policy) for r in step.runs]
    if states.count(Decision.BAD) >= policy.threshold:
        return Decision.BAD
    if len(states) >= policy.runs and all(s is Decision.GOOD for s in states):
        return Decision.GOOD
    return Decision.SKIP


def bad_runs(step: StepResult, policy: Policy) -> int:
    return sum(1 for r in step.runs if run_state(r, policy) is Decision.BAD)


def flaky(step: StepResult, policy: Policy) -> bool:
    """Skipped because some runs were bad, but fewer than the threshold (the rest good)."""
    states = [run_state(r, policy) for r in step.runs]
    bad = states.count(Decision.BAD)
    return (
        decide(step, policy) is Decision.SKIP
        and 0 < bad < policy.threshold
        and bad + states.count(Decision.GOOD) == len(states)
    )


def settled(runs: Sequence[RunObs], policy: Policy) -> bool:
    """True when more runs cannot change the step's decision (the oracle may stop early)."""
    states = [run_state(r, policy) for r in runs]
    bad, left = states.count(Decision.BAD), policy.runs - len(states)
    if bad >= policy.threshold or left <= 0:
        return True
    could_be_good = all(s is Decision.GOOD for s in states)
    return not could_be_good and bad + left < policy.threshold


def side_of(decision: Decision, policy: Policy) -> Side | None:
    if decision is Decision.SKIP:
        return None
    return Side.OLD if decision is policy.old_decision else Side.NEW


def step_summary(step: StepResult, policy: Policy) -> str:
    """ "cow.x=ok" per named test and run ("r1 ... | r2 ..."), or why the step has no runs."""
    if step.status is Status.BUILD_FAILED or not step.runs:
        return f"{step.status.value}: {step.detail}" if step.detail else step.status.value
    parts = []
    for r in step.runs:
        if r.boot_failed:
            parts.append(f"boot failed: {r.detail}" if r.detail else "boot failed")
            continue
        by_id = {c.id: c for c in r.cases}
        parts.append(" ".join(f"{t}={_case_text(by_id.get(t))}" for t in policy.tests))
    if len(parts) > 1 and len(set(parts)) == 1:
        return f"{parts[0]} (x{len(parts)})"
    return " | ".join(parts)


_PLAIN = {("ok", "PASS"), ("not_ok", "FAIL"), ("skip", "SKIP"), ("error", "ERROR"), ("xfail", "XFAIL")}


def _case_text(c: CaseObs | None) -> str:
    """The outcome, with the verdict when it says more (not_ok(XFAIL), ok(XPASS), ok(FAIL))."""
    if c is None:
        return "missing"
    return c.outcome if (c.outcome, c.verdict) in _PLAIN else f"{c.outcome}({c.verdict})"


# ---- an ordered list of candidates (prebuilt kernels) -------------------------------------


@dataclass(frozen=True)
class Plan:
    """What to do next over an ordered list: test `index`, or done with `possible` (indexes
    that may be the first new one; exact when there is one)."""

    index: int | None = None
    possible: tuple[int, ...] = ()

    @property
    def done(self) -> bool:
        return self.index is None


def plan(n: int, sides: Mapping[int, Side | None]) -> Plan:
    """Next candidate of an ordered list of n, given the sides found so far (None = skipped).

    Index 0 is old and n-1 is new, checked or assumed. The next candidate is the untested one
    nearest the middle of the remaining range; when only skipped ones are left, the first new
    one is any of them or the range's new end (like git bisect's "could be any of")."""
    if n < 2:
        raise ValueError("a bisect needs at least two candidates")
    lo = max((i for i, s in sides.items() if s is Side.OLD and i < n - 1), default=0)
    hi = min((i for i, s in sides.items() if s is Side.NEW and i > lo), default=n - 1)
    untested = [i for i in range(lo + 1, hi) if i not in sides]
    if not untested:
        return Plan(None, tuple(range(lo + 1, hi + 1)))
    mid = (lo + hi) / 2
    return Plan(min(untested, key=lambda i: (abs(i - mid), i)))


def steps_left(n: int, sides: Mapping[int, Side | None]) -> int:
    """Roughly how many more steps (log2 of the untested range), for progress lines."""
    p = plan(n, sides)
    if p.done:
        return 0
    lo = max((i for i, s in sides.items() if s is Side.OLD and i < n - 1), default=0)
    hi = min((i for i, s in sides.items() if s is Side.NEW and i > lo), default=n - 1)
    return max(1, math.ceil(math.log2(max(2, hi - lo))))


# ---- confidence ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Confidence:
    value: float  # 0..1
    text: str


def confidence(steps: Sequence[StepResult], policy: Policy, possible: int) -> Confidence:
    """How much to trust the answer, from the repeat counts and the skips next to it.

    Model: every run shows its kernel's true side except with probability f, the flake rate,
    estimated from the runs that disagreed with their own step's decision (a bad step's good
    runs, a good step has none) and the bad runs of steps skipped as flaky. A good step of n runs
    is wrong with probability f^n (a bad kernel looked good every time); a bad step with
    probability P(Binomial(n, f) >= threshold). The answer is right when
    every decided step is, and, with k candidates left only by skips, when the first of them is
    the one (1/k). With no disagreement seen, f = 0: only the skips next to the answer count.
    """
    decided = [(s, decide(s, policy)) for s in steps]
    decided = [(s, d) for s, d in decided if d is not Decision.SKIP]
    shaky = [s for s in steps if flaky(s, policy)]  # skipped as flaky: its bad runs are flakes
    total = sum(len(s.runs) for s, _ in decided) + sum(len(s.runs) for s in shaky)
    minority = sum(sum(1 for r in s.runs if run_state(r, policy) is not d) for s, d in decided)
    minority += sum(sum(1 for r in s.runs if run_state(r, policy) is Decision.BAD) for s in shaky)
    f = minority / total if total else 0.0
    p_right = 1.0
    for s, d in decided:
        n = len(s.runs)
        wrong = f**n if d is Decision.GOOD else _binom_tail(n, f, policy.threshold)
        p_right *= 1.0 - wrong
    value = p_right / max(1, possible)
    parts = ["exact" if possible <= 1 else f"one of {possible} candidates (the others were skipped)"]
    parts.append(
        f"{len(decided)} decided step(s), {total} run(s)"
        + (f", {len(shaky)} step(s) skipped as flaky" if shaky else "")
    )
    parts.append(
        f"{minority} run(s) disagreed with their step (flake rate {f:.0%})"
        if minority
        else "no run disagreed with its step"
    )
    if policy.runs == 1 and not minority:
        parts.append("one run per step: use --runs N for a flaky test")
    return Confidence(round(value, 3), "; ".join(parts))


def _binom_tail(n: int, p: float, k: int) -> float:
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))


# ---- records (JSON) --------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRecord:
    """One tested candidate in the bisect's state file."""

    candidate: str  # kernel spec or full commit hash
    label: str  # what to show: the spec, or "<short hash> <subject>"
    role: str  # "old endpoint" | "new endpoint" | "step"
    result: StepResult
    decision: Decision
    side: Side | None


def step_to_dict(r: StepRecord) -> dict[str, Any]:
    res = r.result
    return {
        "candidate": r.candidate,
        "label": r.label,
        "role": r.role,
        "decision": r.decision.value,
        "side": r.side.value if r.side else None,
        "status": res.status.value,
        "detail": res.detail,
        "prepare_s": round(res.prepare_s, 2),
        "run_s": round(res.run_s, 2),
        "build_hash": res.build_hash,
        "runs": [
            {
                "boot_failed": x.boot_failed,
                "detail": x.detail,
                "run_dir": x.run_dir,
                "seconds": round(x.seconds, 2),
                "cases": [
                    {"id": c.id, "outcome": c.outcome, "verdict": c.verdict, "reason": c.reason}
                    for c in x.cases
                ],
            }
            for x in res.runs
        ],
    }


def step_from_dict(d: Mapping[str, Any]) -> StepRecord:
    runs = tuple(
        RunObs(
            tuple(
                CaseObs(c["id"], c["outcome"], c["verdict"], c.get("reason", "")) for c in x.get("cases", [])
            ),
            bool(x.get("boot_failed")),
            x.get("detail", ""),
            x.get("run_dir", ""),
            float(x.get("seconds", 0.0)),
        )
        for x in d.get("runs", [])
    )
    res = StepResult(
        Status(d["status"]),
        runs,
        d.get("detail", ""),
        float(d.get("prepare_s", 0.0)),
        float(d.get("run_s", 0.0)),
        d.get("build_hash", ""),
    )
    side = d.get("side")
    return StepRecord(
        d["candidate"],
        d.get("label", d["candidate"]),
        d.get("role", "step"),
        res,
        Decision(d["decision"]),
        Side(side) if side else None,
    )


@dataclass(frozen=True)
class Answer:
    """How a bisect ended. status: found | ambiguous | endpoint-failed."""

    status: str
    first: tuple[str, ...] = ()  # the first new candidate (one), or every one it could be
    message: str = ""
    confidence: Confidence | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # commit subject, files, ...

    @property
    def exit_code(self) -> int:
        return {"found": 0, "ambiguous": 1}.get(self.status, 2)


def answer_to_dict(a: Answer) -> dict[str, Any]:
    return {
        "status": a.status,
        "first": list(a.first),
        "message": a.message,
        "confidence": a.confidence.value if a.confidence else None,
        "confidence_text": a.confidence.text if a.confidence else "",
        **dict(a.extra),
    }


def endpoint_message(rec: StepRecord, expected: Decision, policy: Policy, where: str) -> str:
    """Why the bisect stops at a failed endpoint check: one line the user can act on."""
    what = f"{where} {rec.label} should be {expected.value}"
    if rec.decision is Decision.SKIP:
        return (
            f"{what} but could not be decided ({step_summary(rec.result, policy)}); "
            "fix it, or bisect with --no-check-endpoints"
        )
    hint = (
        " (without --reverse the search is for the first bad one, the regression)"
        if policy.reverse
        else " (looking for a fix? --reverse searches for the first good one)"
    )
    return f"{what} but is {rec.decision.value}: {step_summary(rec.result, policy)}{hint}"


# ---- proving the answer: revert-and-retest, no-op culprits ------------------------------------

VERIFIED, NO_APPLY, NOT_RESTORED, UNTESTED = (
    "verified by revert",
    "revert does not apply",
    "revert does not restore",
    "revert could not be tested",
)
DOUBT_FACTOR = 0.1  # what is left of the confidence when the proof contradicts the answer


@dataclass(frozen=True)
class Verification:
    """The culprit reverted on top of the new end, built and tested again. status is one of
    VERIFIED (the old behaviour is back), NO_APPLY (the revert conflicts: detail says where),
    NOT_RESTORED (still in the new state: the answer is doubtful) or UNTESTED (the reverted
    tree did not build or the step was undecided)."""

    commit: str  # the culprit
    onto: str  # the new end it was reverted on
    status: str
    detail: str = ""
    step: StepResult | None = None


def judge_revert(commit: str, onto: str, step: StepResult, policy: Policy) -> Verification:
    """What the reverted tree's step says: back on the old side is the proof (pure)."""
    d = decide(step, policy)
    if d is policy.old_decision:
        return Verification(commit, onto, VERIFIED, f"{d.value} with it reverted", step)
    if d is Decision.SKIP:
        return Verification(commit, onto, UNTESTED, step_summary(step, policy)[:300], step)
    return Verification(
        commit,
        onto,
        NOT_RESTORED,
        f"still {d.value} with it reverted: {step_summary(step, policy)[:300]}",
        step,
    )


def noop_culprit(culprit: StepResult, parents: Sequence[StepResult]) -> bool:
    """The culprit's build is byte-identical to a parent's (syzkaller's detectNoopChange): the
    commit cannot have changed the kernel, so whatever changed the verdict was not it (pure)."""
    return bool(culprit.build_hash) and any(p.build_hash == culprit.build_hash for p in parents)


def proven(conf: Confidence, verification: Verification | None, noop: bool) -> Confidence:
    """The confidence after the proofs: a revert that does not restore, or a culprit whose build
    equals its parent's, leaves DOUBT_FACTOR of it and says so (pure)."""
    value, parts = conf.value, [conf.text]
    if verification is not None:
        parts.append(verification.status)
        if verification.status == NOT_RESTORED:
            value *= DOUBT_FACTOR
    if noop:
        value *= DOUBT_FACTOR
        parts.append("no-op culprit: its build is identical to its parent's, the answer is unreliable")
    return Confidence(round(value, 3), "; ".join(parts))


def verification_to_dict(v: Verification) -> dict[str, Any]:
    return {
        "commit": v.commit,
        "onto": v.onto,
        "status": v.status,
        "detail": v.detail,
        "step": step_to_dict(StepRecord(v.onto, "revert", "revert", v.step, Decision.SKIP, None))
        if v.step is not None
        else None,
    }


def verification_from_dict(d: Mapping[str, Any], policy: Policy) -> Verification:
    st = d.get("step")
    step = step_from_dict(st).result if st else None
    if step is not None:  # re-derived under the current policy, like every step
        return judge_revert(d["commit"], d["onto"], step, policy)
    return Verification(d["commit"], d["onto"], d["status"], d.get("detail", ""))
