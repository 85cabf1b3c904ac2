"""Self-contained HTML pages (pure): one per run or matrix run, one per comparison.

A page is one file with its CSS inline and no script, no font, no image, nothing fetched: it
opens from a CI artifact store, a mail attachment or file://. It leads with a coloured banner
(green: everything as expected / no regression; red: not), the kernels, then the cases a person
has to read (unexpected verdicts with their output and the kernel's reports), then the matrix:
kernels as columns in upstream version order (6.1 < 6.12 < 7.0), a cell that differs from the
kernel to its left marked, the cases that change somewhere along the kernels first and then all
of them; then the known gaps and the skips.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.model import Verdict
from harness.report import cowgrid
from harness.report.compare import KIND_ORDER, Change, Comparison, Kind
from harness.report.resultset import CaseSummary, ResultSet
from harness.safetext import xml_safe

OUTPUT_CHARS = 20000  # of one case's output on the page; the rest is in the run dir
SPLAT_MARK = "--- kernel reports during this case ---"

# Verdict colours: cell background, text. The banner colours are the PASS and FAIL text ones.
COLOURS: dict[Verdict, tuple[str, str]] = {
    Verdict.PASS: ("#c8ecd0", "#1b6e34"),
    Verdict.FAIL: ("#f7c6c6", "#b01c1c"),
    Verdict.ERROR: ("#e3c8f0", "#6a1b9a"),
    Verdict.XPASS: ("#ffd9b0", "#a34800"),
    Verdict.FLAKY: ("#fff0a0", "#7a5c00"),
    Verdict.XFAIL: ("#d6e2f0", "#2c4a6e"),
    Verdict.SKIP: ("#e8e8e8", "#555555"),
}
BANNER_OK = "#1e8e3e"
BANNER_BAD = "#c62828"

_CSS = """
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d1d1d;background:#fafafa}
header.banner{padding:18px 28px;color:#fff}
header.banner h1{margin:0;font-size:24px}
header.banner p{margin:4px 0 0;font-size:15px}
header.ok{background:%(ok)s} header.bad{background:%(bad)s}
main{padding:8px 28px 40px}
h2{margin:26px 0 8px;font-size:18px;border-bottom:1px solid #ccc;padding-bottom:3px}
table{border-collapse:collapse;background:#fff}
th,td{border:1px solid #d0d0d0;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}
table.matrix td.v{text-align:center;font-weight:600}
tr.prog th{background:#e4e8ee;font-weight:600}
table.matrix{table-layout:fixed}
table.matrix col.idcol{width:27em} table.matrix col.kcol{width:5.8em}
table.matrix th,table.matrix td{padding:2px 5px;overflow-wrap:break-word}
table.matrix thead th{position:sticky;top:0;z-index:1}
table.matrix td.chg,.chg-sample{box-shadow:inset 4px 0 0 #1d1d1d}
.chg-sample{background:#fff;color:#1d1d1d;border:1px solid #1d1d1d}
span.mark{font-weight:700;color:#1d1d1d}
tr.changes td.id{font-weight:600}
details.grid{margin:6px 0}
details.grid summary{cursor:pointer;font-weight:600;padding:2px 0}
p.legend{margin:4px 0;color:#444}
td.id,span.id{font-family:ui-monospace,monospace;font-size:13px}
.tag{display:inline-block;padding:0 6px;border-radius:3px;font-weight:600;font-size:12px}
article.case{background:#fff;border:1px solid #d0d0d0;border-left-width:6px;margin:10px 0;padding:6px 12px}
article.case h3{margin:2px 0;font-size:15px}
pre{background:#1e1e1e;color:#e8e8e8;padding:8px;overflow-x:auto;font-size:12px;max-height:420px;white-space:pre-wrap}
ul.events{margin:4px 0;color:#b01c1c}
.muted{color:#666}
footer{padding:10px 28px;color:#777;font-size:12px}
""" % {"ok": BANNER_OK, "bad": BANNER_BAD}


def _css() -> str:
    rules = [_CSS, cowgrid.CSS]
    for v, (bg, fg) in COLOURS.items():
        rules.append(f".v-{v.value}{{background:{bg};color:{fg}}}")
        rules.append(f"article.v-{v.value}{{border-left-color:{fg}}}")
    return "\n".join(rules)


def esc(text: object) -> str:
    """Console text made safe for a page: no markup, no control characters."""
    return html.escape(xml_safe(str(text)), quote=True)


def _tag(v: Verdict, extra: str = "") -> str:
    return f'<span class="tag v-{v.value}">{v.value}{(" " + esc(extra)) if extra else ""}</span>'


def _page(title: str, ok: bool, headline: str, subline: str, body: Iterable[str], footer: str) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(title)}</title><style>{_css()}</style></head><body>",
            f'<header class="banner {"ok" if ok else "bad"}" id="banner"><h1>{esc(headline)}</h1><p>{esc(subline)}</p></header>',
            "<main>",
            *body,
            "</main>",
            f"<footer>{esc(footer)}</footer>",
            "</body></html>",
            "",
        ]
    )


# ---- run / matrix page ------------------------------------------------------------------------


def _fact(fp: Mapping[str, Any], *path: str) -> str:
    node: Any = fp
    for p in path:
        if not isinstance(node, Mapping) or p not in node:
            return ""
        node = node[p]
    return "" if node is None else str(node)


def _kernels_table(rs: ResultSet, errors: Mapping[str, str]) -> list[str]:
    order = [v for v in COLOURS]
    head = "".join(f"<th>{v.value}</th>" for v in order)
    rows = [
        '<h2 id="kernels">Kernels</h2>',
        "<table><thead><tr><th>kernel</th><th>release</th>"
        f"<th>version</th><th>accel</th><th>boot</th><th>run</th>{head}<th>note</th></tr></thead><tbody>",
    ]
    for k in rs.kernels_by_version():
        fp = rs.fingerprints.get(k, {})
        counts = Counter(c.verdict for c in rs.of_kernel(k))
        boot = _fact(fp, "machine", "boot_s")
        total = _fact(fp, "total_s")
        cells = "".join(
            f'<td class="{"v v-" + v.value if counts[v] else ""}">{counts[v] or ""}</td>' for v in order
        )
        rows.append(
            f"<tr><th>{esc(k or '(unnamed)')}</th><td>{esc(_fact(fp, 'kernel', 'release'))}</td>"
            f"<td>{esc(_fact(fp, 'kernel', 'version'))}</td><td>{esc(_fact(fp, 'machine', 'accel'))}</td>"
            f"<td>{esc(boot + ' s' if boot else '')}</td><td>{esc(total + ' s' if total else '')}</td>"
            f"{cells}<td>{esc(errors.get(k, ''))}</td></tr>"
        )
    rows.append("</tbody></table>")
    return rows


GRID_OPEN_MAX = 100  # cases: a bigger full grid starts folded, one <details> per program
CHANGE_MARK = "Δ"  # before a verdict that changes from the kernel to its left (and class "chg")


def _grid_ids(rs: ResultSet) -> dict[str, list[str]]:
    """program -> its case ids, first-seen order."""
    ids: dict[str, list[str]] = {}
    for c in rs.cases:
        if c.id not in ids.setdefault(c.program, []):
            ids[c.program].append(c.id)
    return ids


def changed_cells(rs: ResultSet, kernels: Sequence[str]) -> dict[str, list[bool]]:
    """case id -> per kernel column, whether its verdict differs from the column to its left
    (a case missing on one kernel and present on its neighbour differs too). Pure."""
    by = rs.by_key()
    out: dict[str, list[bool]] = {}
    for c in rs.cases:
        if c.id in out:
            continue
        seen = [by[(k, c.id)].verdict if (k, c.id) in by else None for k in kernels]
        out[c.id] = [i > 0 and seen[i] is not seen[i - 1] for i in range(len(seen))]
    return out


def _grid_head(rs: ResultSet, kernels: Sequence[str]) -> str:
    ids = {k.label: k for k in rs.kernel_ids()}
    # "debian:<wbr>6.12": a narrow column breaks the label after the prefix, not inside the version
    head = "".join(
        f"<th>{esc(k or '(unnamed)').replace(':', ':<wbr>', 1)}<br>"
        f'<span class="muted">{esc(ids[k].upstream_text)}</span></th>'
        for k in kernels
    )
    # fixed column widths: the per-program tables of the grid line up under each other
    cols = f'<colgroup><col class="idcol"><col class="kcol" span="{len(kernels)}"></colgroup>'
    return f"{cols}<thead><tr><th>case</th>{head}</tr></thead>"


def _grid_row(
    rs: ResultSet,
    kernels: Sequence[str],
    case_id: str,
    changed: Sequence[bool],
    cells: Mapping[tuple[str, str], CaseSummary],
) -> str:
    tds = []
    for i, k in enumerate(kernels):
        cell = cells.get((k, case_id))
        mark = f'<span class="mark">{CHANGE_MARK}</span> ' if changed[i] else ""
        cls = " chg" if changed[i] else ""
        if cell is None:
            tds.append(f'<td class="v muted{cls}">{mark}-</td>')
            continue
        rate = cell.rate_text()
        tip = cell.reason or cell.expect_reason
        if changed[i]:
            left = cells.get((kernels[i - 1], case_id))
            tip = f"changes from {kernels[i - 1]} ({left.verdict.value if left else 'not run'})" + (
                f": {tip}" if tip else ""
            )
        tds.append(
            f'<td class="v v-{cell.verdict.value}{cls}" title="{esc(tip)}">{mark}{cell.verdict.value}'
            f"{(' ' + esc(rate)) if rate else ''}</td>"
        )
    tr = '<tr class="changes">' if any(changed) else "<tr>"
    return f'{tr}<td class="id">{esc(case_id)}</td>{"".join(tds)}</tr>'


def _legend(kernels: Sequence[str]) -> str:
    return (
        f'<p class="legend">Kernels in upstream version order, oldest on the left. '
        f'<span class="tag chg-sample">{CHANGE_MARK}</span> marks a verdict that changes from the kernel '
        f"to its left; hover a cell for its reason.</p>"
        if len(kernels) > 1
        else ""
    )


def _matrix_table(rs: ResultSet) -> list[str]:
    """For several kernels, first the cases whose verdict changes somewhere along the kernels,
    then every case; a grid of more than GRID_OPEN_MAX cases is folded per program."""
    kernels = rs.kernels_by_version()
    cells = {c.key: c for c in rs.cases}
    ids = _grid_ids(rs)
    changed = changed_cells(rs, kernels)
    n_ids = sum(len(v) for v in ids.values())
    head = _grid_head(rs, kernels)
    ncol = len(kernels) + 1
    rows: list[str] = []
    if len(kernels) > 1:
        moving = {p: [i for i in v if any(changed[i])] for p, v in ids.items()}
        n_moving = sum(len(v) for v in moving.values())
        rows.append(f'<h2 id="changes">Changes across kernels ({n_moving} of {n_ids} cases)</h2>')
        if n_moving:
            rows += [_legend(kernels), f'<table class="matrix">{head}<tbody>']
            for program, prog_ids in moving.items():
                if prog_ids:
                    rows.append(f'<tr class="prog"><th colspan="{ncol}">{esc(program)}</th></tr>')
                    rows += [_grid_row(rs, kernels, i, changed[i], cells) for i in prog_ids]
            rows.append("</tbody></table>")
        else:
            rows.append("<p>Every case has the same verdict on every kernel.</p>")
    rows += [
        f'<h2 id="matrix">Matrix ({n_ids} cases × {len(kernels)} kernel{"s" if len(kernels) != 1 else ""})</h2>',
        _legend(kernels),
    ]
    open_ = " open" if n_ids <= GRID_OPEN_MAX else ""
    for program, prog_ids in ids.items():
        n_chg = sum(1 for i in prog_ids if any(changed[i]))
        note = f", {n_chg} changing across kernels" if len(kernels) > 1 else ""
        rows.append(
            f'<details class="grid"{open_}><summary>{esc(program)} '
            f'<span class="muted">({len(prog_ids)} cases{note})</span></summary>'
        )
        rows.append(f'<table class="matrix">{head}<tbody>')
        rows += [_grid_row(rs, kernels, i, changed[i], cells) for i in prog_ids]
        rows.append("</tbody></table></details>")
    return rows


def _cow_grids(rs: ResultSet) -> list[str]:
    """The COW suite per kernel as an operation x memory-type grid; for several kernels, first
    the cells that differ between them, and each kernel's grid folded (the newest open)."""
    grid = cowgrid.build(rs.cases)
    if not grid.size:
        return []
    kernels = rs.kernels_by_version()
    ids = {k.label: k for k in rs.kernel_ids()}
    rows = [
        f'<h2 id="cow-grid">COW suite: operation × memory type ({len(grid.ops)} × {len(grid.mems)})</h2>',
        cowgrid.legend(grid),
    ]
    if len(kernels) > 1:
        names = cowgrid.short_names([ids[k] for k in kernels])
        n_diff = len(cowgrid.differing(grid, kernels))
        rows.append(f'<h3 id="cow-diff">Cells that differ between kernels ({n_diff})</h3>')
        if n_diff:
            rows.append(
                f'<p class="legend">Only the rows and columns with a difference. Each cell: the verdict on the '
                f"oldest kernel, then each kernel where it changes ({esc(', '.join(names[k] + ' = ' + k for k in kernels))}).</p>"
            )
            rows.append(cowgrid.diff_table(grid, kernels, names))
        else:
            rows.append("<p>Every COW case has the same verdict on every kernel.</p>")
    for i, k in enumerate(kernels):
        mine = [c for c in grid.cells.values() if c.kernel == k]
        if not mine:
            continue
        counts = Counter(c.verdict for c in mine)
        summary = (
            f'{esc(k or "(unnamed)")} <span class="muted">({len(mine)} cases: '
            + ", ".join(f"{counts[v]} {v.value}" for v in COLOURS if counts[v])
            + ")</span>"
        )
        if len(kernels) > 1:
            open_ = " open" if i == len(kernels) - 1 else ""
            rows.append(f'<details class="cow"{open_}><summary>{summary}</summary>')
            rows += [cowgrid.kernel_table(grid, k), "</details>"]
        else:
            rows += [f"<p>{summary}</p>", cowgrid.kernel_table(grid, k)]
    return rows


def _output_block(output: str, open_: bool) -> str:
    if not output.strip():
        return ""
    text = (
        output
        if len(output) <= OUTPUT_CHARS
        else output[:OUTPUT_CHARS] + "\n[... cut; the whole output is in the run dir]"
    )
    return f"<details{' open' if open_ else ''}><summary>output</summary><pre>{esc(text)}</pre></details>"


def _case_article(c: CaseSummary, open_output: bool) -> str:
    parts = [
        f'<article class="case v-{c.verdict.value}">',
        f'<h3>{_tag(c.verdict, c.rate_text())} <span class="id">{esc(c.id)}</span>'
        f' <span class="muted">on {esc(c.kernel or "(unnamed)")} · {esc(c.program)}</span></h3>',
    ]
    if c.reason:
        parts.append(f"<p>{esc(c.reason)}</p>")
    if c.runs > 1:
        parts.append("<p>runs: " + " ".join(_tag(v) for v in c.verdicts) + "</p>")
    exp = f"expected {c.expect}" + (f": {c.expect_reason}" if c.expect_reason else "")
    if c.expect_commit:
        exp += f" ({c.expect_commit})"
    parts.append(f'<p class="muted">{esc(exp)}</p>')
    if c.kernel_events:
        parts.append('<ul class="events">' + "".join(f"<li>{esc(e)}</li>" for e in c.kernel_events) + "</ul>")
    parts.append(_output_block(c.output, open_output))
    parts.append("</article>")
    return "".join(parts)


def _splats(cases: Sequence[CaseSummary]) -> list[str]:
    with_events = [c for c in cases if c.kernel_events]
    if not with_events:
        return [
            '<h2 id="splats">Kernel reports</h2>',
            "<p>The kernel reported nothing (no WARN, BUG, oops, "
            "KASAN, lockup or panic) while the cases ran.</p>",
        ]
    rows = [
        '<h2 id="splats">Kernel reports</h2>',
        "<table><thead><tr><th>kernel</th><th>case</th><th>report</th></tr></thead><tbody>",
    ]
    for c in with_events:
        for e in c.kernel_events:
            rows.append(f'<tr><td>{esc(c.kernel)}</td><td class="id">{esc(c.id)}</td><td>{esc(e)}</td></tr>')
    rows.append("</tbody></table>")
    for c in with_events:
        start = c.output.find(SPLAT_MARK)
        excerpt = c.output[start + len(SPLAT_MARK) :].strip() if start >= 0 else c.output
        rows.append(
            f'<details><summary>{esc(c.kernel)} · <span class="id">{esc(c.id)}</span>: '
            f"{esc(c.kernel_events[0])}</summary><pre>{esc(excerpt[:OUTPUT_CHARS])}</pre></details>"
        )
    return rows


def _simple_table(title: str, anchor: str, cases: Sequence[CaseSummary], why: str) -> list[str]:
    if not cases:
        return []
    rows = [
        f'<h2 id="{anchor}">{esc(title)} ({len(cases)})</h2>',
        f"<table><thead><tr><th>kernel</th><th>case</th><th>{esc(why)}</th></tr></thead><tbody>",
    ]
    for c in cases:
        text = c.reason
        if c.verdict is Verdict.XFAIL and c.expect_reason:
            text = c.expect_reason + (f" ({c.expect_commit})" if c.expect_commit else "")
        rows.append(f'<tr><td>{esc(c.kernel)}</td><td class="id">{esc(c.id)}</td><td>{esc(text)}</td></tr>')
    rows.append("</tbody></table>")
    return rows


def run_page(rs: ResultSet, title: str, errors: Mapping[str, str] | None = None, footer: str = "") -> str:
    """The page of one run or one matrix run. `errors`: kernel label -> what went wrong there."""
    errors = errors or {}
    unexpected = [c for c in rs.cases if c.verdict.unexpected]
    n_k = len(rs.kernels)
    counts = Counter(c.verdict for c in rs.cases)
    ok = not unexpected and not any(errors.values())
    headline = (
        f"All {len(rs.cases)} cases as expected"
        if ok
        else f"{len(unexpected)} unexpected verdict{'s' if len(unexpected) != 1 else ''}"
        + (" and errors" if any(errors.values()) else "")
    )
    sub = f"{title} · {n_k} kernel{'s' if n_k != 1 else ''} · " + ", ".join(
        f"{counts[v]} {v.value}" for v in COLOURS if counts[v]
    )
    body = _kernels_table(rs, errors)
    body.append(f'<h2 id="unexpected">Unexpected ({len(unexpected)})</h2>')
    body += [_case_article(c, True) for c in unexpected] or ["<p>None.</p>"]
    body += _splats(rs.cases)
    body += _cow_grids(rs)
    body += _matrix_table(rs)
    body += _simple_table(
        "Known kernel gaps (XFAIL)", "known", [c for c in rs.cases if c.verdict is Verdict.XFAIL], "why"
    )
    body += _simple_table("Skipped", "skipped", [c for c in rs.cases if c.verdict is Verdict.SKIP], "reason")
    return _page(title, ok, headline, sub, body, footer)


# ---- comparison page --------------------------------------------------------------------------


def _change_row(ch: Change) -> str:
    def cell(c: CaseSummary | None) -> str:
        if c is None:
            return '<td class="muted">-</td>'
        return f'<td class="v v-{c.verdict.value}">{c.verdict.value}{(" " + esc(c.rate_text())) if c.rate_text() else ""}</td>'

    now = ch.new or ch.old
    return (
        f'<tr><td>{esc(ch.kernel)}</td><td class="id">{esc(ch.id)}</td>{cell(ch.old)}{cell(ch.new)}'
        f"<td>{esc((now.reason or now.expect_reason) if now else '')}</td></tr>"
    )


def comparison_page(c: Comparison, title: str = "comparison", footer: str = "") -> str:
    regs = c.regressions
    counts = c.counts()
    headline = "No regressions" if not regs else f"{len(regs)} regression{'s' if len(regs) != 1 else ''}"
    sub = ", ".join(f"{counts[k]} {k.value}" for k in KIND_ORDER)
    body = [
        f'<p>old: <span class="id">{esc(c.old_source)}</span><br>new: <span class="id">{esc(c.new_source)}</span></p>'
    ]
    moved = [p for p in c.pairings if p.moved]
    body += [f'<p class="line-move">{esc(p.text("→"))}</p>' for p in moved if p.same_line]
    across = [p.text("→") for p in moved if not p.same_line]
    if across:
        body.append("<p>kernels matched: " + ", ".join(esc(t) for t in across) + "</p>")
    body.append(
        "<table><tbody>"
        + "".join(f"<tr><th>{esc(k.value)}</th><td>{counts[k]}</td></tr>" for k in KIND_ORDER)
        + "</tbody></table>"
    )
    for kind in KIND_ORDER:
        group = [ch for ch in c.of(kind) if kind is not Kind.UNCHANGED or ch.verdict_changed]
        if not group:
            continue
        label = "unchanged, verdict moved" if kind is Kind.UNCHANGED else kind.value
        body.append(f'<h2 id="{kind.name.lower()}">{esc(label)} ({len(group)})</h2>')
        body.append(
            "<table><thead><tr><th>kernel</th><th>case</th><th>before</th><th>now</th><th>reason</th>"
            "</tr></thead><tbody>" + "".join(_change_row(ch) for ch in group) + "</tbody></table>"
        )
        if kind is Kind.REGRESSION:
            body += [_case_article(ch.new, False) for ch in group if ch.new is not None]
    if c.flaky:
        body.append(f'<h2 id="flaky-rates">Pass rates of flaky cases ({len(c.flaky)})</h2>')
        body.append(
            "<table><thead><tr><th>kernel</th><th>case</th><th>as expected</th><th>runs</th></tr></thead><tbody>"
        )
        for ch in c.flaky:
            assert ch.new is not None
            n: CaseSummary = ch.new
            body.append(
                f'<tr><td>{esc(ch.kernel)}</td><td class="id">{esc(ch.id)}</td>'
                f"<td>{n.as_expected}/{n.runs} ({n.pass_rate:.0%})</td>"
                f"<td>{' '.join(_tag(v) for v in n.verdicts)}</td></tr>"
            )
        body.append("</tbody></table>")
    return _page(title, not regs, headline, sub, body, footer)
