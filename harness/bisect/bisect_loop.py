"""The bisect loop, shared by every kind of candidate: resume from bisect.json, check the two
ends, let the search space pick candidates until it names the first new one, prove it (a git
culprit is reverted on the new end and tested again; a culprit whose build equals its parent's
is a no-op), and write the record (bisect.json, steps.txt, summary.txt, junit.xml) after every
step.

What a candidate is and who picks the next one is a Space: ListSpace here (an ordered list of
kernel specs, picked by bisect.plan), GitSpace in bisect_git.py (git bisect picks). What a step
finds is an Oracle: the real one is bisect_cmd.RunOracle; tests pass fakes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness import reportio, signals
from harness.bisect import bisect_report
from harness.bisect.core import (
    NO_APPLY,
    Answer,
    Policy,
    Side,
    StepRecord,
    StepResult,
    Verification,
    answer_to_dict,
    confidence,
    decide,
    endpoint_message,
    judge_revert,
    noop_culprit,
    plan,
    proven,
    side_of,
    step_from_dict,
    step_to_dict,
    verification_from_dict,
    verification_to_dict,
)
from harness.errors import HarnessError, InputError
from harness.model import Progress

Oracle = Callable[[str, Path], StepResult]  # (candidate, step dir) -> what the step found
STATE = "bisect.json"
STATE_VERSION = 1


class Space(Protocol):
    """Where the candidates come from and who picks the next one."""

    kind: str

    def identity(self) -> dict[str, Any]: ...
    def endpoints(self) -> tuple[str, str]: ...  # (old end, new end)
    def label(self, cand: str) -> str: ...
    def open(self) -> None: ...
    def checkout(self, cand: str) -> None: ...
    def start(self, marks: Sequence[tuple[str, Side | None]]) -> None: ...
    def next(self) -> str | None: ...
    def mark(self, cand: str, side: Side | None) -> None: ...
    def possible(self) -> tuple[str, ...]: ...
    def details(self, cand: str) -> dict[str, Any]: ...
    def files(self) -> dict[str, str]: ...
    def discard(self) -> None: ...
    def parents(self, cand: str) -> tuple[str, ...]: ...
    def revert(self, cand: str) -> str: ...  # "" when the new end with cand reverted is checked out
    def unrevert(self) -> None: ...


class ListSpace:
    """An ordered list of kernel specs, old to new; bisect.plan picks the next one."""

    kind = "kernels"

    def __init__(self, candidates: Sequence[str]) -> None:
        if len(candidates) < 2:
            raise InputError("--kernels: a bisect needs at least two kernels")
        if len(set(candidates)) != len(candidates):
            raise InputError("--kernels: a kernel is listed twice")
        self.candidates = list(candidates)
        self.sides: dict[int, Side | None] = {}

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "candidates": self.candidates}

    def endpoints(self) -> tuple[str, str]:
        return self.candidates[0], self.candidates[-1]

    def label(self, cand: str) -> str:
        return cand

    def open(self) -> None:
        pass

    def checkout(self, cand: str) -> None:
        pass

    def start(self, marks: Sequence[tuple[str, Side | None]]) -> None:
        for cand, side in marks:
            self.mark(cand, side)

    def next(self) -> str | None:
        p = plan(len(self.candidates), self.sides)
        return None if p.index is None else self.candidates[p.index]

    def mark(self, cand: str, side: Side | None) -> None:
        self.sides[self.candidates.index(cand)] = side

    def possible(self) -> tuple[str, ...]:
        return tuple(self.candidates[i] for i in plan(len(self.candidates), self.sides).possible)

    def details(self, cand: str) -> dict[str, Any]:
        return {}

    def files(self) -> dict[str, str]:
        return {}

    def discard(self) -> None:
        pass

    def parents(self, cand: str) -> tuple[str, ...]:
        i = self.candidates.index(cand)
        return (self.candidates[i - 1],) if i else ()

    def revert(self, cand: str) -> str:
        return "a list of kernels has nothing to revert"

    def unrevert(self) -> None:
        pass


def identity(space: Space, policy: Policy, extra: dict[str, Any]) -> dict[str, Any]:
    """What makes two invocations the same bisect: the same candidates, tests, runs (and build
    configuration). The rest of the policy may change between them: decisions are re-derived."""
    return {**space.identity(), "tests": list(policy.tests), "runs": policy.runs, **extra}


def default_dir(space: Space, policy: Policy, extra: dict[str, Any]) -> Path:
    ident = identity(space, policy, extra)
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:8]
    slug = re.sub(r"[^A-Za-z0-9.-]", "_", policy.tests[0])[-40:]
    return Path("harness-bisect") / f"{space.kind}-{slug}-{digest}"


# ---- state ----------------------------------------------------------------------------------


def rejudge(rec: StepRecord, policy: Policy) -> StepRecord:
    """Decisions are derived from the saved runs with the current policy (--reverse, --judge,
    --bad-threshold may change between invocations; the observations do not)."""
    d = decide(rec.result, policy)
    return dataclasses.replace(rec, decision=d, side=side_of(d, policy))


def load_state(
    path: Path, identity: dict[str, Any], policy: Policy
) -> tuple[list[StepRecord], Verification | None]:
    """The saved steps and revert check, re-judged under the current policy."""
    if not path.is_file():
        return [], None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable bisect state ({e}); rerun with --restart") from None
    if data.get("identity") != identity:
        raise InputError(
            f"{path.parent} holds a different bisect (other kernels, revisions, tests "
            "or --runs); use another --out, or --restart to discard it"
        )
    ver = data.get("verification")
    return (
        [rejudge(step_from_dict(s), policy) for s in data.get("steps", [])],
        verification_from_dict(ver, policy) if ver else None,
    )


@dataclass
class BisectOutcome:
    bisect_dir: Path
    records: list[StepRecord]
    answer: Answer | None = None
    exit_code: int = 0
    text: str = ""


class Bisect:
    """One invocation: resume from bisect.json, check the ends, loop, write the record."""

    def __init__(
        self,
        space: Space,
        oracle: Oracle,
        policy: Policy,
        bisect_dir: Path,
        check_endpoints: bool = True,
        progress: Progress = lambda s: None,
        junit: Path | None = None,
        restart: bool = False,
        info: dict[str, Any] | None = None,
        verify: bool = True,
    ) -> None:
        self.space, self.oracle, self.policy, self.verify = space, oracle, policy, verify
        self.dir, self.check_endpoints, self.progress, self.junit = (
            bisect_dir,
            check_endpoints,
            progress,
            junit,
        )
        self.info = info or {}
        self.identity = identity(space, policy, self.info.get("identity", {}))
        self.t0 = time.monotonic()
        if restart:
            space.discard()
            for name in (STATE, "steps.txt", "summary.txt", "junit.xml", "git-bisect.log", "replay.log"):
                (bisect_dir / name).unlink(missing_ok=True)
            shutil.rmtree(bisect_dir / "steps", ignore_errors=True)
        bisect_dir.mkdir(parents=True, exist_ok=True)
        self.records, self.verification = load_state(bisect_dir / STATE, self.identity, policy)

    def run(self) -> BisectOutcome:
        out = BisectOutcome(self.dir, self.records)
        if self.records:
            self.progress(f"resuming the bisect in {self.dir}: {len(self.records)} step(s) already done")
        try:
            out.answer = self._search()
            out.exit_code = out.answer.exit_code
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (a CI cancel): 130 or 143
            out.exit_code = signals.exit_code(e)
            self.progress(
                f"interrupted: {len(self.records)} step(s) saved in {self.dir / STATE}; "
                "run the same command again to continue"
            )
        finally:
            with signals.held():  # a second Ctrl-C must not cut the JUnit short
                out.text = self.write(out.answer)
        return out

    def _search(self) -> Answer:
        sp, pol = self.space, self.policy
        sp.open()
        old, new = sp.endpoints()
        if self.check_endpoints:
            for cand, role, want in (
                (old, "old endpoint", pol.old_decision),
                (new, "new endpoint", pol.new_decision),
            ):
                rec = self.find(cand) or self.step(cand, role)
                if rec.decision is not want:
                    return Answer("endpoint-failed", (), endpoint_message(rec, want, pol, self._where(role)))
        sp.start([(r.candidate, r.side) for r in self.records])
        while (nxt := sp.next()) is not None:
            if self.find(nxt) is not None:
                raise HarnessError(f"the search came back to {sp.label(nxt)}, which was already decided")
            rec = self.step(nxt, "step")
            sp.mark(nxt, rec.side)
        possible = sp.possible()
        if not possible:
            raise HarnessError("the search ended without a candidate (git bisect said nothing we understood)")
        conf = confidence([r.result for r in self.records], pol, len(possible))
        if len(possible) > 1:
            return Answer(
                "ambiguous",
                possible,
                "only skipped candidates are left",
                conf,
                {"labels": [sp.label(c) for c in possible]},
            )
        return self._prove(Answer("found", possible, "", conf, sp.details(possible[0])))

    def _prove(self, ans: Answer) -> Answer:
        """Revert-and-retest (git only, unless --no-verify) and the no-op check; both can only
        lower the confidence, and both are in the answer."""
        sp, first = self.space, ans.first[0]
        culprit = self.find(first)
        parents = [r.result for p in sp.parents(first) if (r := self.find(p)) is not None]
        noop = culprit is not None and noop_culprit(culprit.result, parents)
        extra = dict(ans.extra)
        if culprit is not None and culprit.result.build_hash:
            extra["build_hash"] = culprit.result.build_hash
            extra["noop"] = noop if parents and all(p.build_hash for p in parents) else None
        ver = None
        if self.verify and sp.kind == "git":
            ver = (
                self.verification
                if self.verification is not None and self.verification.commit == first
                else self._revert_step(first)
            )
            st = ver.step
            extra["verification"] = {
                "status": ver.status,
                "detail": ver.detail,
                "onto": ver.onto,
                "prepare_s": round(st.prepare_s, 1) if st else 0.0,
                "run_s": round(st.run_s, 1) if st else 0.0,
            }
        assert ans.confidence is not None
        return dataclasses.replace(ans, confidence=proven(ans.confidence, ver, noop), extra=extra)

    def _revert_step(self, first: str) -> Verification:
        sp = self.space
        onto = sp.endpoints()[1]
        self.progress(f"revert check: {sp.label(first)} reverted on top of {sp.label(onto)}")
        why = sp.revert(first)
        if why:
            ver = Verification(first, onto, NO_APPLY, why)
        else:
            step_dir = self.dir / "steps" / "revert"
            shutil.rmtree(step_dir, ignore_errors=True)
            step_dir.mkdir(parents=True)
            reportio.write_text(step_dir / "candidate.txt", f"{onto} with {first} reverted\n")
            try:
                res = self.oracle(onto, step_dir)
            finally:
                sp.unrevert()
            ver = judge_revert(first, onto, res, self.policy)
        self.verification = ver
        self.save(None)
        took = f" (build {ver.step.prepare_s:.0f}s + tests {ver.step.run_s:.0f}s)" if ver.step else ""
        self.progress(f"   {ver.status}: {ver.detail}{took}")
        return ver

    def _where(self, role: str) -> str:
        old = role == "old endpoint"
        if self.space.kind == "kernels":
            return "the first kernel" if old else "the last kernel"
        return "--bad" if old == self.policy.reverse else "--good"

    def find(self, cand: str) -> StepRecord | None:
        return next((r for r in self.records if r.candidate == cand), None)

    def step(self, cand: str, role: str) -> StepRecord:
        n = len(self.records) + 1
        # Short names: QEMU's monitor socket lives in the run dir, and a UNIX socket path must
        # fit in 108 bytes. The step log and candidate.txt say which candidate it was.
        step_dir = self.dir / "steps" / f"{n:02d}"
        shutil.rmtree(step_dir, ignore_errors=True)  # what an interrupted attempt left
        step_dir.mkdir(parents=True)
        reportio.write_text(step_dir / "candidate.txt", f"{cand}\n{self.space.label(cand)}\n")
        self.progress(f"step {n}: {self.space.label(cand)} ({role})")
        self.space.checkout(cand)
        res = self.oracle(cand, step_dir)
        d = decide(res, self.policy)
        rec = StepRecord(cand, self.space.label(cand), role, res, d, side_of(d, self.policy))
        self.records.append(rec)
        self.save(None)
        self.progress("   " + bisect_report.step_line(n, rec, self.policy).strip())
        return rec

    def save(self, answer: Answer | None) -> None:
        state = {
            "version": STATE_VERSION,
            "kind": self.space.kind,
            "identity": self.identity,
            "policy": {
                "tests": list(self.policy.tests),
                "runs": self.policy.runs,
                "bad_threshold": self.policy.threshold,
                "judge": self.policy.judge.value,
                "bisect_boot": self.policy.bisect_boot,
                "reverse": self.policy.reverse,
                "check_endpoints": self.check_endpoints,
                "verify": self.verify,
            },
            "request": self.info.get("request", {}),
            "steps": [step_to_dict(r) for r in self.records],
            "verification": verification_to_dict(self.verification) if self.verification else None,
            "answer": answer_to_dict(answer) if answer else None,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        reportio.write_text(self.dir / STATE, json.dumps(state, indent=2) + "\n")

    def write(self, answer: Answer | None) -> str:
        self.save(answer)
        pol = self.policy
        log = bisect_report.step_log(self.records, pol)
        text = (
            bisect_report.final_text(answer, self.records, pol, time.monotonic() - self.t0)
            if answer
            else f"bisect stopped after {len(self.records)} step(s); rerun the same command to continue\n"
        )
        props = {
            "bisect.kind": self.space.kind,
            "bisect.tests": " ".join(pol.tests),
            "bisect.judge": pol.judge.value,
            "bisect.runs": str(pol.runs),
            "bisect.reverse": str(pol.reverse).lower(),
            "bisect.status": answer.status if answer else "interrupted",
            "bisect.first": " ".join(answer.first) if answer else "",
            "bisect.verification": str((answer.extra.get("verification") or {}).get("status", ""))
            if answer
            else "",
            "bisect.confidence": str(answer.confidence.value) if answer and answer.confidence else "",
        }
        xml = bisect_report.junit(self.records, answer, pol, props)
        reportio.write_text(self.dir / "junit.xml", xml)  # first: what CI reads
        if self.junit is not None:
            self.junit.parent.mkdir(parents=True, exist_ok=True)
            reportio.write_text(self.junit, xml)
        reportio.write_text(self.dir / "steps.txt", bisect_report.describe_policy(pol) + "\n\n" + log)
        reportio.write_text(self.dir / "summary.txt", text)
        for name, content in self.space.files().items():
            reportio.write_text(self.dir / name, content)
        return log + "\n" + text
