"""Fakes for the bisect tests: step results from short words, and oracles over a table."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from harness.bisect.core import CaseObs, RunObs, Status, StepResult

TEST = "cow.unshare.odirect-write.base"
OTHER = "cow.fork.child-keeps-data.base"

# outcome word -> (outcome, verdict) as the runner would judge it on a kernel that expects a pass
_WORDS = {
    "ok": ("ok", "PASS"),
    "not_ok": ("not_ok", "FAIL"),
    "xfail": ("not_ok", "XFAIL"),
    "skip": ("skip", "SKIP"),
    "error": ("error", "ERROR"),
}


def run(*words: str, tests: Sequence[str] = (TEST,), other: str | None = None) -> RunObs:
    """One run: the named tests' outcomes by word; `other` adds an unrelated case."""
    cases = [CaseObs(t, *_WORDS[w]) for t, w in zip(tests, words, strict=False)]
    if other is not None:
        cases.append(CaseObs(OTHER, *_WORDS[other]))
    return RunObs(tuple(cases))


def step(*runs_words: str, other: str | None = None) -> StepResult:
    """ "ok", "not_ok ok ok" (one word per run), "build" (build failed) or "boot" (no boot)."""
    if runs_words == ("build",):
        return StepResult(Status.BUILD_FAILED, (), "mm/util.c:1: error: expected ';'", 30.0)
    if runs_words == ("boot",):
        return StepResult(Status.BOOT_FAILED, (), "the guest never came up", 1.0)
    return StepResult(Status.RAN, tuple(run(w, other=other) for w in runs_words), "", 1.0, 2.0)


class TableOracle:
    """Answers from a table candidate -> step words; counts calls; can interrupt at call N."""

    def __init__(
        self,
        table: Mapping[str, str] | Callable[[str], str],
        interrupt_at: int | None = None,
        other: str | None = None,
    ) -> None:
        self.table, self.interrupt_at, self.other = table, interrupt_at, other
        self.calls: list[str] = []

    def __call__(self, cand: str, step_dir: Path) -> StepResult:
        if self.interrupt_at is not None and len(self.calls) + 1 == self.interrupt_at:
            raise KeyboardInterrupt
        self.calls.append(cand)
        words = self.table(cand) if callable(self.table) else self.table[cand]
        return step(*words.split(), other=self.other)
