"""Writes the reports beyond JUnit into a run directory: report.html and kcidb.json for a run or
matrix run, compare.{txt,json,html} for a comparison. The thin I/O around the pure writers
(htmlreport, kcidb, compare)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from pathlib import Path

from harness import __version__, reportio
from harness.errors import InputError
from harness.report import compare, htmlreport, kcidb, resultset


def _footer(source: str) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"harness {__version__} · {now} · {source}"


def _start_time(run_dir: Path) -> str:
    """When the run began, RFC 3339: the run dir's creation, as near as the filesystem tells."""
    t = datetime.datetime.fromtimestamp(run_dir.stat().st_mtime, datetime.UTC)
    for name in ("console.log", "matrix.json", "results.jsonl"):
        if (run_dir / name).exists():
            t = min(t, datetime.datetime.fromtimestamp((run_dir / name).stat().st_mtime, datetime.UTC))
    return t.replace(microsecond=0).isoformat()


def write_run_reports(
    run_dir: Path,
    title: str = "",
    errors: Mapping[str, str] | None = None,
    rs: resultset.ResultSet | None = None,
) -> resultset.ResultSet:
    """report.html and kcidb.json of a run (or matrix) directory, from what is on disk."""
    run_dir = Path(run_dir)
    rs = rs or resultset.load(run_dir)
    page = htmlreport.run_page(rs, title or f"harness run {run_dir.name}", errors, _footer(str(run_dir)))
    reportio.write_text(run_dir / "report.html", page)
    start = _start_time(run_dir)
    # Test ids must differ between nights that reuse a directory name (CI's nightly-out/matrix).
    run_id = f"{run_dir.name}-{start[:19].replace('-', '').replace(':', '')}"
    doc = kcidb.document(rs, run_id, start)
    reportio.write_text(run_dir / "kcidb.json", json.dumps(doc, indent=1) + "\n")
    return rs


def load_baseline(path: Path) -> resultset.ResultSet:
    """The baseline for --baseline, read before the run so a bad path fails in a second."""
    try:
        return resultset.load(path)
    except InputError as e:
        raise InputError(f"--baseline: {e}") from None


def write_comparison(c: compare.Comparison, out_dir: Path, stem: str = "compare") -> None:
    out_dir = Path(out_dir)
    reportio.write_text(out_dir / f"{stem}.txt", compare.render_text(c))
    reportio.write_text(out_dir / f"{stem}.json", json.dumps(compare.to_json(c), indent=1) + "\n")
    page = htmlreport.comparison_page(
        c,
        f"{Path(c.old_source).name} → {Path(c.new_source).name}",
        _footer(f"{c.old_source} → {c.new_source}"),
    )
    reportio.write_text(out_dir / f"{stem}.html", page)


def compare_with_baseline(baseline: resultset.ResultSet, run_dir: Path) -> compare.Comparison:
    """The end-of-run comparison of --baseline: written into the run dir as compare.*."""
    c = compare.compare(baseline, resultset.load(run_dir))
    write_comparison(c, run_dir)
    return c
