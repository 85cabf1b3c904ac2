"""The COW suite as a grid (pure): operations down, memory types across, for the HTML page.

A case id `cow.<operation>.<memory type>` names its grid cell: the id minus its last component
is the row (`cow.fork.child-keeps-data`), the last component the column (`thp`). Columns are
in a fixed family order (base, THP, mTHP by size, hugetlb, zeropage, memfd, tmpfs, ext4, then
the rest alphabetically), so every kernel's grid and every run's page line up the same way.
Probes (`probe.*`) and kselftests are not in the grid: they have no memory-type axis.

Each cell is coloured by verdict (the CSS classes `v-<VERDICT>` of harness.htmlreport) with a
short mark, and carries the case id, verdict and reason in its title attribute: a hover shows
them without a script.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.kernels.kernelid import KernelId
from harness.model import Verdict
from harness.report.resultset import CaseSummary
from harness.safetext import xml_safe

PREFIX = "cow."

# One short mark per verdict: a 1.6em cell holds it; the legend spells them out.
MARKS: dict[Verdict, str] = {
    Verdict.PASS: "✓",
    Verdict.FAIL: "✗",
    Verdict.ERROR: "E",
    Verdict.XPASS: "xp",
    Verdict.FLAKY: "~",
    Verdict.XFAIL: "xf",
    Verdict.SKIP: "s",
}

# Column families, in order: (regex on the memory type, rank within the family by name).
# Names a family knows come in the order listed (README of cow_tests, "Memory types");
# mTHP sizes sort numerically; anything else in a family follows alphabetically.
_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"base(-.*)?$", ("base", "base-swapped", "base-readonly")),
    (
        r"thp(-.*)?$",
        (
            "thp",
            "thp-swapped",
            "thp-pte",
            "thp-pte-swapped",
            "thp-single-pte",
            "thp-single-pte-swapped",
            "thp-mremap",
            "thp-mremap-kept",
            "thp-partially-shared",
        ),
    ),
    (r"mthp-\d+k(-.*)?$", ()),  # by size, then the form's name
    (
        r"hugetlb-.*$",
        (
            "hugetlb-2m",
            "hugetlb-1g",
            "hugetlb-memfd-private",
            "hugetlb-memfd-shared",
            "hugetlb-memfd-1g-private",
            "hugetlb-memfd-1g-shared",
        ),
    ),
    (r"(huge-)?zeropage$", ("zeropage", "huge-zeropage")),
    (r"memfd(-.*)?$", ("memfd-private", "memfd-shared")),
    (r"tmpfs(-.*)?$", ("tmpfs-private", "tmpfs-shared")),
    (r"ext4(-.*)?$", ("ext4-private", "ext4-shared")),
)


def split_id(case_id: str) -> tuple[str, str] | None:
    """`cow.fork.child-keeps-data.thp` -> (`cow.fork.child-keeps-data`, `thp`); None for an id
    outside the COW suite or without an operation and a memory type."""
    if not case_id.startswith(PREFIX):
        return None
    op, _, mem = case_id.rpartition(".")
    if op.count(".") < 1 or not mem:
        return None
    return op, mem


def memtype_key(mem: str) -> tuple[int, int, int, str]:
    """Sort key of a memory-type column: family, place in the family, size, name."""
    for i, (pattern, known) in enumerate(_FAMILIES):
        if re.match(pattern, mem):
            size = re.search(r"\d+", mem)
            rank = known.index(mem) if mem in known else len(known)
            return (i, rank, int(size.group()) if size and rank == len(known) else 0, mem)
    return (len(_FAMILIES), 0, 0, mem)


@dataclass(frozen=True)
class Grid:
    """The COW cases of one or more kernels laid out by operation and memory type."""

    ops: tuple[str, ...]  # rows, first-seen order (the programs' own order)
    mems: tuple[str, ...]  # columns, memtype_key order
    cells: Mapping[tuple[str, str, str], CaseSummary]  # (kernel, op, mem) -> case

    @property
    def size(self) -> int:
        return len(self.cells)


def build(cases: Sequence[CaseSummary]) -> Grid:
    ops: dict[str, None] = {}
    mems: set[str] = set()
    cells: dict[tuple[str, str, str], CaseSummary] = {}
    for c in cases:
        parts = split_id(c.id)
        if parts is None:
            continue
        op, mem = parts
        ops.setdefault(op)
        mems.add(mem)
        cells[(c.kernel, op, mem)] = c
    return Grid(tuple(ops), tuple(sorted(mems, key=memtype_key)), cells)


def short_names(ids: Sequence[KernelId]) -> dict[str, str]:
    """label -> the shortest name that still tells the kernels apart: the line ("6.1"), else
    the package ("6.1.0-56"), else the label."""
    for attr in ("line", "package", "label"):
        names: dict[str, str] = {k.label: str(getattr(k, attr) or "") for k in ids}
        if all(names.values()) and len(set(names.values())) == len(names):
            return names
    return {k.label: k.label for k in ids}


def differing(grid: Grid, kernels: Sequence[str]) -> dict[tuple[str, str], list[Verdict | None]]:
    """(op, mem) -> its verdict per kernel (None: not run there), for the cells whose verdict
    is not the same on every kernel."""
    out: dict[tuple[str, str], list[Verdict | None]] = {}
    for op in grid.ops:
        for mem in grid.mems:
            seen = [grid.cells[(k, op, mem)].verdict if (k, op, mem) in grid.cells else None for k in kernels]
            if len(set(seen)) > 1:
                out[(op, mem)] = seen
    return out


# ---- HTML ----------------------------------------------------------------------------------

CSS = """
div.gridwrap{overflow-x:auto;max-width:100%}
table.cowgrid{table-layout:fixed;font-size:12px}
table.cowgrid th,table.cowgrid td{padding:1px 2px;text-align:center;vertical-align:middle;line-height:1.25}
table.cowgrid thead th{position:sticky;top:0;z-index:2;background:#f0f0f0;vertical-align:bottom}
table.cowgrid thead th.mem{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;
 font-weight:600;font-size:11px;padding:4px 1px;width:1.9em;height:auto}
table.cowgrid th.op{text-align:left;font-family:ui-monospace,monospace;font-weight:400;white-space:nowrap;
 background:#fff;position:sticky;left:0;z-index:1}
table.cowgrid thead th.corner{left:0;z-index:3;text-align:left}
table.cowgrid td{min-width:1.6em;font-weight:700}
table.cowgrid td.none{background:#fff}
table.cowdiff td{white-space:nowrap;font-weight:600;padding:1px 4px}
table.cowdiff td span{padding:0 2px;border-radius:2px}
details.cow{margin:6px 0}
details.cow summary{cursor:pointer;font-weight:600;padding:2px 0}
"""


def esc(text: object) -> str:
    return html.escape(xml_safe(str(text)), quote=True)


def _head(mems: Sequence[str], corner: str) -> str:
    cols = "".join(f'<th class="mem" scope="col">{esc(m)}</th>' for m in mems)
    return f'<thead><tr><th class="op corner" scope="col">{esc(corner)}</th>{cols}</tr></thead>'


def _tip(c: CaseSummary) -> str:
    why = c.reason or c.expect_reason
    rate = c.rate_text()
    return f"{c.id}: {c.verdict.value}{(' ' + rate) if rate else ''}{(' - ' + why) if why else ''}"


def kernel_table(grid: Grid, kernel: str) -> str:
    """One kernel's grid: a row per operation, a column per memory type, an empty cell where
    the kernel has no such case."""
    rows = []
    for op in grid.ops:
        tds = []
        for mem in grid.mems:
            c = grid.cells.get((kernel, op, mem))
            if c is None:
                tds.append('<td class="none"></td>')
            else:
                tds.append(f'<td class="v-{c.verdict.value}" title="{esc(_tip(c))}">{MARKS[c.verdict]}</td>')
        rows.append(f'<tr><th class="op" scope="row">{esc(op)}</th>{"".join(tds)}</tr>')
    return (
        f'<div class="gridwrap"><table class="cowgrid" data-kernel="{esc(kernel)}">{_head(grid.mems, "operation")}'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _diff_cell(
    seen: Sequence[Verdict | None], kernels: Sequence[str], names: Mapping[str, str]
) -> tuple[str, str]:
    """(cell HTML, title text): the oldest kernel's verdict and each kernel where it changes:
    "xf → 6.12 ✓" in the cell, "debian:6.1.0-56 XFAIL → debian:6.12 PASS" in the title."""
    shown, tip = [], []
    for i, v in enumerate(seen):
        if i > 0 and v is seen[i - 1]:
            continue
        name = names[kernels[i]]
        tip.append(f"{kernels[i]} {v.value if v else 'not run'}")
        mark = f'<span class="v-{v.value}">{MARKS[v]}</span>' if v else '<span class="muted">-</span>'
        # the oldest kernel's name goes without saying (the legend gives the order); a change names its kernel
        shown.append(mark if i == 0 else f"{esc(name)} {mark}")
    return " → ".join(shown), " → ".join(tip)


def diff_table(grid: Grid, kernels: Sequence[str], names: Mapping[str, str]) -> str:
    """The cells whose verdict differs between kernels: only the rows and columns that have
    one, each showing the oldest kernel's verdict and where it changes ("xf → 6.12 ✓")."""
    diff = differing(grid, kernels)
    ops = [op for op in grid.ops if any((op, m) in diff for m in grid.mems)]
    mems = [m for m in grid.mems if any((op, m) in diff for op in grid.ops)]
    rows = []
    for op in ops:
        tds = []
        for mem in mems:
            if (op, mem) not in diff:
                tds.append('<td class="none"></td>')
                continue
            cell, tip = _diff_cell(diff[(op, mem)], kernels, names)
            tds.append(f'<td title="{esc(op + "." + mem + ": " + tip)}">{cell}</td>')
        rows.append(f'<tr><th class="op" scope="row">{esc(op)}</th>{"".join(tds)}</tr>')
    return (
        f'<div class="gridwrap"><table class="cowgrid cowdiff">{_head(mems, "operation")}'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def legend(grid: Grid) -> str:
    """The marks of the verdicts in the grid (only those: no red sample on a passing page)."""
    present = {c.verdict for c in grid.cells.values()}
    return (
        '<p class="legend">'
        + " ".join(
            f'<span class="tag v-{v.value}">{MARKS[v]}</span> {v.value}' for v in MARKS if v in present
        )
        + "; an empty cell: no such case. Hover a cell for the case id, verdict and reason.</p>"
    )
