"""Compare two sets of results (last night's and tonight's): what changed? Pure.

Cases are matched by (kernel, case id). When each side holds exactly one kernel the two are
matched whatever their labels, so `compare` also answers "what differs between 6.1 and 6.12?".
Otherwise a kernel is matched by its label, and what is left by its LINE (kernelid: upstream
major.minor plus flavour), so a matrix whose debian:6.1.0-56 became debian:6.1.0-57 overnight
compares 6.1 with 6.1 instead of listing every case as removed and new. Each pairing whose
package changed is said once ("6.1 line: 6.1.0-56 (6.1.192) -> 6.1.0-57 (6.1.193)").

Every case falls in exactly one kind:

- regression: unexpected now (FAIL, XPASS, ERROR, FLAKY) and as expected before, or new and
  unexpected (a new test that fails is a new failure). Any regression: exit 1.
- fixed: unexpected before, as expected now.
- still failing: unexpected before and now (FAIL, XPASS, ERROR).
- flaky: FLAKY now and already unexpected before (not news; a newly flaky case is a regression).
- known: as expected on both sides and XFAIL now (a known kernel gap).
- new / removed: on one side only (new and as expected / gone).
- unchanged: as expected on both sides; `verdict_changed` flags e.g. PASS -> SKIP.

`Comparison.flaky` lists every case FLAKY on the new side, regression or not, with its pass rate.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass
from typing import Any

from harness.kernels.kernelid import KernelId, Pairing, pair
from harness.model import Verdict
from harness.report.resultset import CaseSummary, ResultSet
from harness.safetext import terminal_line


class Kind(str, enum.Enum):
    REGRESSION = "regression"
    FIXED = "fixed"
    STILL_FAILING = "still failing"
    FLAKY = "flaky"
    KNOWN = "known"
    NEW = "new"
    REMOVED = "removed"
    UNCHANGED = "unchanged"


# Order of sections in reports: what needs a person first.
KIND_ORDER = tuple(Kind)


@dataclass(frozen=True)
class Change:
    kernel: str  # the new side's label (the old side's for a removed case)
    id: str
    kind: Kind
    old: CaseSummary | None
    new: CaseSummary | None

    @property
    def verdict_changed(self) -> bool:
        return self.old is not None and self.new is not None and self.old.verdict is not self.new.verdict


@dataclass(frozen=True)
class Comparison:
    old_source: str
    new_source: str
    kernel_pairs: tuple[tuple[str, str], ...]  # (old label, new label) matched with each other
    changes: tuple[Change, ...]
    pairings: tuple[Pairing, ...] = ()  # the same pairs with each side's package and line

    def moves(self) -> list[str]:
        """One line per kernel whose package (or label) changed: "6.1 line: 6.1.0-56 (6.1.192)
        -> 6.1.0-57 (6.1.193)", or "debian:6.1.0-56 -> debian:6.12" across lines."""
        return [p.text() for p in self.pairings if p.moved]

    def of(self, kind: Kind) -> list[Change]:
        return [c for c in self.changes if c.kind is kind]

    @property
    def regressions(self) -> list[Change]:
        return self.of(Kind.REGRESSION)

    @property
    def flaky(self) -> list[Change]:
        return [c for c in self.changes if c.new is not None and c.new.verdict is Verdict.FLAKY]

    def counts(self) -> Counter[Kind]:
        return Counter(c.kind for c in self.changes)

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions else 0


def classify(old: CaseSummary | None, new: CaseSummary | None) -> Kind:
    if new is None:
        return Kind.REMOVED
    bad_now = new.verdict.unexpected
    if old is None:
        return Kind.REGRESSION if bad_now else Kind.NEW
    bad_before = old.verdict.unexpected
    if bad_now and not bad_before:
        return Kind.REGRESSION
    if bad_now:
        return Kind.FLAKY if new.verdict is Verdict.FLAKY else Kind.STILL_FAILING
    if bad_before:
        return Kind.FIXED
    return Kind.KNOWN if new.verdict is Verdict.XFAIL else Kind.UNCHANGED


def compare(old: ResultSet, new: ResultSet) -> Comparison:
    pairings = sorted(
        pair(old.kernel_ids(), new.kernel_ids()), key=lambda p: p.new.sort_key()
    )  # 6.1 before 6.12
    pairs = {p.old.label: p.new.label for p in pairings}  # old label -> new label
    old_by_key = {(pairs.get(c.kernel, f"\0{c.kernel}"), c.id): c for c in old.cases}
    new_by_key = new.by_key()
    changes = [
        Change(k, i, classify(old_by_key.get((k, i)), c), old_by_key.get((k, i)), c)
        for (k, i), c in new_by_key.items()
    ]
    changes += [
        Change(c.kernel, c.id, Kind.REMOVED, c, None)
        for key, c in old_by_key.items()
        if key not in new_by_key
    ]
    return Comparison(old.source, new.source, tuple(pairs.items()), tuple(changes), tuple(pairings))


# ---- text and JSON ---------------------------------------------------------------------------


def _verdict_text(c: CaseSummary | None) -> str:
    if c is None:
        return "-"
    rate = c.rate_text()
    return f"{c.verdict.value} {rate}" if rate else c.verdict.value


def change_line(ch: Change, width: int = 0) -> str:
    now = ch.new or ch.old
    reason = terminal_line((now.reason or now.expect_reason) if now else "")[:160]
    label = f"{terminal_line(ch.kernel)}  " if ch.kernel else ""
    return (
        f"{ch.kind.value.upper():<13} {label}{terminal_line(ch.id):<{width}}  "
        f"{_verdict_text(ch.old)} -> {_verdict_text(ch.new)}  {reason}"
    ).rstrip()


def summary_line(c: Comparison) -> str:
    n = c.counts()
    return "compare: " + ", ".join(f"{n[k]} {k.value}" for k in KIND_ORDER)


def render_text(c: Comparison) -> str:
    """Every case that is not unchanged, grouped by kind, then the counts."""
    lines = [f"old: {terminal_line(c.old_source)}", f"new: {terminal_line(c.new_source)}"]
    moved = [p for p in c.pairings if p.moved]
    lines += [terminal_line(p.text()) for p in moved if p.same_line]
    across = [terminal_line(p.text()) for p in moved if not p.same_line]
    if across:
        lines.append("kernels matched: " + ", ".join(across))
    shown = [ch for ch in c.changes if ch.kind is not Kind.UNCHANGED or ch.verdict_changed]
    width = min(max((len(ch.id) for ch in shown), default=0), 60)
    for kind in KIND_ORDER:
        group = [ch for ch in shown if ch.kind is kind]
        if group:
            lines.append("")
            lines += [change_line(ch, width) for ch in group]
    flaky = c.flaky
    if flaky:
        lines += ["", "flaky (pass rate = runs as expected / runs):"]
        lines += [
            f"  {terminal_line(ch.kernel)}  {terminal_line(ch.id)}  {ch.new.rate_text()}"
            for ch in flaky
            if ch.new
        ]
    lines += ["", summary_line(c)]
    return "\n".join(lines) + "\n"


def to_json(c: Comparison) -> dict[str, Any]:
    def side(s: CaseSummary | None) -> dict[str, Any] | None:
        if s is None:
            return None
        return {
            "kernel": s.kernel,
            "verdict": s.verdict.value,
            "verdicts": [v.value for v in s.verdicts],
            "pass_rate": round(s.pass_rate, 4),
            "reason": s.reason,
        }

    def kernel(k: KernelId) -> dict[str, Any]:
        return {"label": k.label, "release": k.release, "upstream": k.upstream_text, "line": k.line}

    return {
        "old": c.old_source,
        "new": c.new_source,
        "kernel_pairs": [list(p) for p in c.kernel_pairs],
        "kernels": [
            {"how": p.how, "moved": p.moved, "old": kernel(p.old), "new": kernel(p.new)} for p in c.pairings
        ],
        "counts": {k.value: c.counts()[k] for k in KIND_ORDER},
        "regressions": len(c.regressions),
        "changes": [
            {
                "kernel": ch.kernel,
                "id": ch.id,
                "kind": ch.kind.value,
                "old": side(ch.old),
                "new": side(ch.new),
            }
            for ch in c.changes
            if ch.kind is not Kind.UNCHANGED or ch.verdict_changed
        ],
    }
