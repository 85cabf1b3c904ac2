"""Helpers for tests on recorded results (tests/data/results/): copy a recorded run dir and
change its records, so each test states the change it makes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

RESULTS = Path(__file__).parent / "data" / "results"
RUN_612 = RESULTS / "run-6.12"
RUN_61 = RESULTS / "run-6.1"
MATRIX = RESULTS / "matrix"


def records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]


def write_records(run_dir: Path, recs: list[dict[str, Any]]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def edited_copy(src: Path, dst: Path, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> Path:
    """A copy of the run dir `src` at `dst` with its records passed through `edit`."""
    shutil.copytree(src, dst)
    write_records(dst, edit(records(dst)))
    return dst


def set_verdict(recs: list[dict[str, Any]], case_id: str, verdict: str, reason: str = "") -> list[dict[str, Any]]:
    hit = [r for r in recs if r["id"] == case_id]
    assert hit, case_id
    for r in hit:
        r["verdict"] = verdict
        if reason:
            r["reason"] = reason
    return recs
