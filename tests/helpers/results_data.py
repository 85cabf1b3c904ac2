"""Helpers for tests on recorded results (tests/data/results/): copy a recorded run dir and
change its records, so each test states the change it makes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers.paths import DATA, REPO

RESULTS = DATA / "results"
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


def set_verdict(
    recs: list[dict[str, Any]], case_id: str, verdict: str, reason: str = ""
) -> list[dict[str, Any]]:
    hit = [r for r in recs if r["id"] == case_id]
    assert hit, case_id
    for r in hit:
        r["verdict"] = verdict
        if reason:
            r["reason"] = reason
    return recs


# One package of each Debian kernel line the harness covers: (label, uname -r, upstream version).
LINES = [
    ("debian:6.1", "6.1.0-57-amd64", "6.1.193"),
    ("debian:6.12", "6.12.118+deb12-amd64", "6.12.118"),
    ("debian:6.16", "6.16.12+deb13-amd64", "6.16.12"),
    ("debian:6.17", "6.17.13+deb13-amd64", "6.17.13"),
    ("debian:6.18", "6.18.9+deb13-amd64", "6.18.9"),
    ("debian:6.19", "6.19.7+deb13-amd64", "6.19.7"),
    ("debian:7.0", "7.0.5+deb13-amd64", "7.0.5"),
    ("debian:7.1", "7.1.3+deb13-amd64", "7.1.3"),
    ("debian:7.2", "7.2.12+deb13-amd64", "7.2.12"),
    ("debian:7.3", "7.3.4+deb13-amd64", "7.3.4"),
]


def synthetic_matrix(
    dst: Path,
    kernels: list[tuple[str, str, str]],
    identity: str = "fingerprint",
    edit: Callable[[str, list[dict[str, Any]]], list[dict[str, Any]]] = lambda k, r: r,
    src: Path = RUN_612,
) -> Path:
    """A matrix dir at `dst` of `kernels` (label, uname -r, upstream version), each with `src`'s
    cases passed through edit(label, records). `identity` says where the package is recorded:
    "fingerprint" (per-kernel fingerprint.json, as a run writes), "matrix.json" (only there:
    the matrix dir copied without its run dirs) or "none" (a matrix written before either)."""
    fp0 = json.loads((src / "fingerprint.json").read_text())
    entries, recs = [], []
    for label, release, version in kernels:
        recs += [dict(r, kernel=label) for r in edit(label, records(src))]
        entry: dict[str, Any] = {"label": label, "runs": []}
        if identity == "fingerprint":
            rel = f"{label.replace(':', '-')}/r1/fingerprint.json"
            (dst / rel).parent.mkdir(parents=True)
            fp = dict(fp0, kernel=dict(fp0["kernel"], spec=label, release=release, version=version))
            (dst / rel).write_text(json.dumps(fp))
            entry["fingerprint"] = rel
        elif identity == "matrix.json":
            entry.update(release=release, version=version)
        entries.append(entry)
    write_records(dst, recs)
    (dst / "matrix.json").write_text(json.dumps({"kernels": entries, "repeat": 1}))
    return dst


CASE_IDS = DATA / "golden" / "case_ids"
EXPECTATIONS = REPO / "expectations.yaml"


def cow_grid_shape() -> tuple[int, int, int]:
    """(operations, memory types, cases) of the cow.* ids in tests/data/golden/case_ids: the
    shape of the COW grid of a whole-suite run."""
    ids = [i for f in CASE_IDS.glob("cow_*.txt") for i in f.read_text().split()]
    return (len({i.rpartition(".")[0] for i in ids}), len({i.rpartition(".")[2] for i in ids}), len(ids))


def whole_suite_matrix() -> Any:
    """The recorded two-kernel matrix (MATRIX: 28 real cases on debian:6.1.0-56 and debian:6.12)
    grown to every case of our programs and probes (the ids of tests/data/golden/case_ids)
    on both kernels: a recorded case as recorded, any other as expectations.yaml says it comes
    out on that kernel with Debian's config (no CONFIG_GUP_TEST), which is what the whole-suite
    run of 2026-11-21 on these two kernels observed (0 unexpected verdicts). For the pages of a
    realistic size; a ResultSet."""
    import dataclasses

    from harness.judge import expect
    from harness.kernels.kernelid import identify
    from harness.model import Kernel, Verdict
    from harness.report import resultset

    rs = resultset.load(MATRIX)
    rules = expect.load(EXPECTATIONS)
    have = {c.key for c in rs.cases}
    verdict = {"pass": Verdict.PASS, "fail": Verdict.XFAIL, "skip": Verdict.SKIP}
    cases = list(rs.cases)
    for label in rs.kernels:
        up = identify(label, rs.fingerprints.get(label)).upstream
        assert up is not None, label
        kernel = Kernel(
            label,
            Path("/nonexistent"),
            "",
            expect.parse_version(".".join(map(str, up))),
            None,
            config={"CONFIG_MEM_SOFT_DIRTY": "y"},
        )  # Debian's, as far as the skip rules look
        for ids in sorted(CASE_IDS.glob("*.txt")):
            program = ids.stem
            for case_id in ids.read_text().split():
                if (label, case_id) in have:
                    continue
                exp = expect.expectation_for(rules, case_id, kernel)
                v = verdict[exp.expect]
                cases.append(
                    resultset.CaseSummary(
                        label,
                        case_id,
                        program,
                        v,
                        (v,),
                        exp.reason if v is not Verdict.PASS else "",
                        "",
                        expect=exp.expect,
                        expect_reason=exp.reason,
                        expect_commit=exp.commit,
                    )
                )
    return dataclasses.replace(rs, cases=tuple(cases))
