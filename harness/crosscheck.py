"""Cross-check: do our cases and the upstream selftest cases that test the same thing agree?

Pure: results in, a table out. Compared is what each test *observed*, not the verdict: an
expectation rule can turn our FAIL into XFAIL while upstream, which has no rules, says XFAIL
by itself (hugetlb vmsplice) — both saw the same broken behaviour. Observed classes:
  works  — ok (PASS, XPASS)
  broken — not ok, or the test's own XFAIL
  skip / error — nothing observed; such a pair is listed but not compared.
A pair where one side saw "works" and the other "broken" is a disagreement.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import upstream_map
from .kselftest import slug
from .model import CaseResult, Outcome

KSELFTEST_PREFIX = "kselftest.mm."


@dataclass(frozen=True)
class Pair:
    ours: CaseResult
    upstream: CaseResult
    upstream_text: str  # the RUN line

    @property
    def status(self) -> str:
        a, b = observed(self.ours), observed(self.upstream)
        if a in ("skip", "error") or b in ("skip", "error"):
            return "not compared"
        return "agree" if a == b else "DISAGREE"


def observed(r: CaseResult) -> str:
    if r.outcome is Outcome.OK:
        return "works"
    if r.outcome in (Outcome.NOT_OK, Outcome.XFAIL):
        return "broken"
    if r.outcome in (Outcome.SKIP, Outcome.TODO):
        return "skip"
    return "error"


def upstream_id(test: str, run_text: str) -> str:
    return f"{KSELFTEST_PREFIX}{test}.{slug(run_text)}"


def pairs(results: list[CaseResult]) -> list[Pair]:
    """Every mapped pair whose two cases are both in the results, in mapping order."""
    by_id = {r.id: r for r in results}
    out = []
    for test, text, ours in upstream_map.pairs():
        up = by_id.get(upstream_id(test, text))
        mine = by_id.get(ours)
        if up is not None and mine is not None:
            out.append(Pair(mine, up, text))
    return out


def applies(results: list[CaseResult]) -> bool:
    """Both sides ran: some of our cow.* cases and some upstream mm kselftest cases."""
    return (any(r.id.startswith("cow.") for r in results)
            and any(r.id.startswith(KSELFTEST_PREFIX) for r in results))


def table(ps: list[Pair]) -> str:
    """One line per pair, then a count line (pure text for the terminal and crosscheck.txt)."""
    lines = [f"{'status':13s} {'ours':6s} {'upstream':8s} our case  <->  upstream case"]
    for p in ps:
        lines.append(f"{p.status:13s} {p.ours.verdict.value:6s} {p.upstream.verdict.value:8s} "
                     f"{p.ours.id}  <->  {p.upstream.id}")
    lines.append(summary(ps))
    return "\n".join(lines)


def summary(ps: list[Pair]) -> str:
    n = {s: sum(1 for p in ps if p.status == s) for s in ("agree", "DISAGREE", "not compared")}
    return (f"cross-check: {len(ps)} pairs: {n['agree']} agree, {n['DISAGREE']} disagree, "
            f"{n['not compared']} not compared (skipped or errored on a side)")


def disagreements(ps: list[Pair]) -> list[Pair]:
    return [p for p in ps if p.status == "DISAGREE"]
