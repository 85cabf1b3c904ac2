"""What a person sees at the end of a run (pure; the CLI prints it).

A default run has a few hundred SKIPs and XFAILs, mostly for one or two reasons (no
CONFIG_GUP_TEST: 159 cases; no mTHP before 6.8: 70). Listed one per line they hide the one
FAIL that matters. So the terminal shows: every unexpected case (FAIL, XPASS, ERROR, FLAKY) with
its reason and the first lines of its output; then the expected SKIPs and XFAILs grouped by why,
each group one line with its count and a compact id pattern; then the counts. `--verbose` shows
the full per-case list instead (report.summary_table, what summary.txt holds), `--quiet` only
the unexpected cases and the final `harness:` line.

Guest text may hold control bytes: every id, reason and output line goes through report's
terminal sanitisers.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from harness import safetext
from harness.model import CaseResult, Verdict
from harness.report import junit as report

DETAILS = ("quiet", "normal", "verbose")
GROUPED = (Verdict.SKIP, Verdict.XFAIL)
OUTPUT_LINES = 5  # of an unexpected case's output
OUTPUT_LINE_CHARS = 200
LISTED_IDS = 3  # a group of at most this many ids names them; a bigger one gets a pattern
_SEPARATORS = "-_."
_INDENT = " " * 7  # under the id, after "ERROR  "


@dataclass(frozen=True)
class Group:
    """Expected non-passes of one verdict and one reason."""

    verdict: Verdict
    reason: str  # the expectation's reason, else the test's own
    ids: tuple[str, ...]  # distinct, first-seen order
    count: int  # cases: a matrix counts each kernel's
    per_kernel: tuple[tuple[str, int], ...]  # (kernel label, cases), first-seen order
    pattern: str  # the ids as "a, b" or a glob; "some of GLOB" when it matches other cases too


_EXPECT_OF = {Verdict.SKIP: "skip", Verdict.XFAIL: "fail"}


def why(r: CaseResult) -> str:
    """What a SKIP or XFAIL is grouped by: the rule's reason when a rule expects this verdict
    ("no CONFIG_GUP_TEST" for 159 cases), else the test's own."""
    exp = r.expectation
    if exp.reason and exp.expect == _EXPECT_OF.get(r.verdict):
        return exp.reason
    return r.reason or exp.reason


def group_expected(
    cases: Sequence[tuple[str, CaseResult]], verdicts: Collection[Verdict] = GROUPED
) -> list[Group]:
    """The (kernel, result) pairs of these verdicts grouped by (verdict, why): SKIPs first, then
    XFAILs, the biggest group first. Kernel "" is a single run."""
    members: dict[tuple[Verdict, str], list[tuple[str, str]]] = {}
    for kernel, r in cases:
        if r.verdict in verdicts:
            members.setdefault((r.verdict, " ".join(why(r).split())), []).append((kernel, r.id))
    every_id = {r.id for _, r in cases}
    order = {v: i for i, v in enumerate(GROUPED)}
    groups = []
    for (verdict, reason), pairs in members.items():
        ids = tuple(dict.fromkeys(i for _, i in pairs))
        per_kernel = tuple(Counter(k for k, _ in pairs).items())
        groups.append(Group(verdict, reason, ids, len(pairs), per_kernel, id_pattern(ids, every_id)))
    return sorted(groups, key=lambda g: (order.get(g.verdict, len(order)), -g.count, g.reason))


def id_pattern(ids: Sequence[str], every_id: Collection[str] = ()) -> str:
    """A short description of `ids`: themselves when few, else one glob cut at id separators
    ("cow.gup-*", "cow.*.mthp-*"), prefixed "some of" when it also matches ids in `every_id`
    outside the group."""
    distinct = list(dict.fromkeys(ids))
    if len(distinct) <= LISTED_IDS:
        return ", ".join(distinct)
    glob = _collapse(_component_glob([i.split(".") for i in distinct]))
    if not all(fnmatchcase(i, glob) for i in distinct):
        glob = _collapse(_common(distinct))
    mine = set(distinct)
    if any(fnmatchcase(i, glob) for i in every_id if i not in mine):
        return f"some of {glob}"
    return glob


def _component_glob(parts: Sequence[Sequence[str]]) -> str:
    """Dot-separated components compared place by place; ids of different depths by their
    first and last components ("cow.*.hugetlb-*")."""
    depths = {len(p) for p in parts}
    if len(depths) == 1:
        return ".".join(_common([p[n] for p in parts]) for n in range(len(parts[0])))
    if min(depths) < 3:
        return ""  # no glob of this shape matches them all: the caller falls back
    return f"{_common([p[0] for p in parts])}.*.{_common([p[-1] for p in parts])}"


def _collapse(glob: str) -> str:
    while "*.*" in glob or "**" in glob:
        glob = glob.replace("*.*", "*").replace("**", "*")
    return glob


def _common(strings: Sequence[str]) -> str:
    """The strings themselves if all equal, else their common prefix and suffix around a "*",
    each cut where a separator is (so "mthp-16k", "mthp-64k" give "mthp-*", not "mthp-*4k")."""
    if len(set(strings)) == 1:
        return strings[0]
    head = _cut(strings, len(os.path.commonprefix(list(strings))))
    rests = [s[len(head) :] for s in strings]
    reversed_rests = [r[::-1] for r in rests]
    tail = _cut(reversed_rests, len(os.path.commonprefix(reversed_rests)))  # the suffix, reversed
    return f"{head}*{tail[::-1]}"


def _cut(strings: Sequence[str], length: int) -> str:
    """The longest common prefix of at most `length` that ends at a separator or at a string's
    end in every string."""
    for n in range(length, 0, -1):
        if all(n == len(s) or s[n - 1] in _SEPARATORS or s[n] in _SEPARATORS for s in strings):
            return strings[0][:n]
    return ""


# ---- rendering --------------------------------------------------------------------------------


def unexpected_lines(r: CaseResult, kernel: str = "", rate: str = "") -> list[str]:
    """One unexpected case: "FAIL   id  reason (expected ...: why)", its kernel reports, the
    first lines of its output."""
    head = f"{r.verdict.value}{' ' + rate if rate else ''}"
    where = f"{safetext.terminal_line(kernel)}  " if kernel else ""
    text = r.reason
    if r.expectation.reason:
        text += f" (expected {r.expectation.expect}: {r.expectation.reason})"
    lines = [f"{head:<5}  {where}{safetext.terminal_line(r.id)}  {safetext.terminal_line(text)}".rstrip()]
    lines += [f"{_INDENT}kernel: {safetext.terminal_line(t)}" for t in r.kernel_events]
    output = [ln for ln in r.output.splitlines() if ln.strip()]
    for ln in output[:OUTPUT_LINES]:
        shown = safetext.terminal_text_line(ln)
        lines.append(f"{_INDENT}| {shown[:OUTPUT_LINE_CHARS]}{'…' if len(shown) > OUTPUT_LINE_CHARS else ''}")
    if len(output) > OUTPUT_LINES:
        lines.append(f"{_INDENT}| … {len(output) - OUTPUT_LINES} more lines (junit.xml, report.html)")
    return lines


def group_lines(groups: Sequence[Group], by_kernel: bool = False) -> list[str]:
    """One line per group: "159 SKIP   reason  (pattern)"; with by_kernel, a second line with
    each kernel's count."""
    width = max((len(str(g.count)) for g in groups), default=1)
    lines = []
    for g in groups:
        pattern = f"  ({safetext.terminal_line(g.pattern)})" if g.pattern else ""
        reason = safetext.terminal_line(g.reason) or "(no reason given)"
        lines.append(f"{g.count:>{width}} {g.verdict.value:<5}  {reason}{pattern}")
        if by_kernel:
            counts = ", ".join(f"{safetext.terminal_line(k)} {n}" for k, n in g.per_kernel)
            lines.append(f"{'':>{width}}        on {counts}")
    return lines


def run_summary(results: Sequence[CaseResult], detail: str = "normal") -> str:
    """The end of `harness run` on one kernel, at this detail (one of DETAILS)."""
    if detail == "verbose":
        return report.summary_table(results)
    blocks: list[list[str]] = []
    unexpected = [line for r in results if r.verdict.unexpected for line in unexpected_lines(r)]
    if unexpected:
        blocks.append(unexpected)
    if detail != "quiet":
        groups = group_lines(group_expected([("", r) for r in results]))
        if groups:
            blocks.append(groups)
    counts = report.count_lines(Counter(r.verdict for r in results))
    blocks.append(counts if detail != "quiet" else counts[-1:])
    return "\n\n".join("\n".join(b) for b in blocks) + "\n"


def detail_of(verbose: bool, quiet: bool) -> str:
    return "verbose" if verbose else "quiet" if quiet else "normal"
