"""harness.report.resultset and harness.report.compare on recorded results (tests/data/results/)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from harness.errors import InputError
from harness.model import Verdict
from harness.report import compare, resultset
from harness.report.compare import Kind
from tests.helpers.results_data import (
    MATRIX,
    RUN_61,
    RUN_612,
    edited_copy,
    records,
    set_verdict,
    synthetic_matrix,
    write_records,
)

PASSING = "cow.unshare.vmsplice.base"  # PASS on both recorded kernels
XFAIL_61 = "cow.unshare.odirect-write.base"  # XFAIL on 6.1, PASS on 6.12


# ---- loading --------------------------------------------------------------------------------


def test_a_run_dir_is_labelled_by_the_kernel_it_asked_for() -> None:
    rs = resultset.load(RUN_612)
    assert rs.kernels == ("debian:6.12",)
    assert len(rs.cases) == 28 and all(c.runs == 1 for c in rs.cases)
    assert rs.fingerprints["debian:6.12"]["kernel"]["release"] == "6.12.117+deb12-amd64"
    # the same file named directly gives the same set (its fingerprint is beside it)
    assert resultset.load(RUN_612 / "results.jsonl").cases == rs.cases


def test_a_matrix_dir_has_every_kernel_and_its_fingerprint() -> None:
    rs = resultset.load(MATRIX)
    assert rs.kernels == ("debian:6.12", "debian:6.1.0-56")
    assert len(rs.cases) == 56
    assert set(rs.fingerprints) == {"debian:6.12", "debian:6.1.0-56"}
    by = rs.by_key()
    assert by[("debian:6.1.0-56", XFAIL_61)].verdict is Verdict.XFAIL
    assert by[("debian:6.12", XFAIL_61)].verdict is Verdict.PASS


def test_a_results_file_without_a_run_dir_has_an_empty_label(tmp_path: Path) -> None:
    write_records(tmp_path / "x", records(RUN_61))
    rs = resultset.load(tmp_path / "x" / "results.jsonl")
    assert rs.kernels == ("",) and len(rs.cases) == 28


def test_repeated_records_become_one_case_with_a_pass_rate() -> None:
    base = {"id": "a", "program": "p", "reason": "", "output": "", "expectation": {"expect": "pass"}}
    recs = [dict(base, verdict="PASS"), dict(base, verdict="FAIL", reason="leak"), dict(base, verdict="PASS")]
    (c,) = resultset.summarize(recs, "k")
    assert c.verdict is Verdict.FLAKY and c.verdicts == (Verdict.PASS, Verdict.FAIL, Verdict.PASS)
    assert c.as_expected == 2 and c.rate_text() == "2/3" and abs(c.pass_rate - 2 / 3) < 1e-9
    assert c.reason == "2/3 runs as expected (PASS FAIL PASS); leak"
    (same,) = resultset.summarize([dict(base, verdict="XFAIL")] * 3, "k")
    assert same.verdict is Verdict.XFAIL and same.pass_rate == 1.0


def test_a_summary_record_reads_back_as_the_same_summary() -> None:
    base = {"id": "a", "program": "p", "output": "o", "expectation": {"expect": "fail", "reason": "r"}}
    recs = [
        dict(base, verdict="XFAIL", reason="x", kernel_events=["WARNING: at mm/memory.c"]),
        dict(base, verdict="PASS", reason=""),
    ]
    (c,) = resultset.summarize(recs, "debian:6.12")
    (back,) = resultset.summarize([json.loads(json.dumps(resultset.summary_record(c)))])
    assert back == c


@pytest.mark.parametrize(
    "content, words",
    [
        ('{"id": "a", "verdict": "PASS"}\nnot json\n{"id": "b", "verdict": "PASS"}\n', ["results.jsonl:2"]),
        ('{"id": "a", "verdict": "MAYBE"}\n', ["unknown verdict", "MAYBE"]),
        ('{"verdict": "PASS"}\n', ["record 1", "is not a result"]),
        ("[1, 2]\n", ["record 1"]),
    ],
)
def test_bad_results_are_refused_naming_the_file(tmp_path: Path, content: str, words: list[str]) -> None:
    (tmp_path / "results.jsonl").write_text(content)
    with pytest.raises(InputError) as e:
        resultset.load(tmp_path)
    for w in words:
        assert w in str(e.value)


def test_missing_paths_and_dirs_without_results_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        resultset.load(tmp_path / "nope")
    with pytest.raises(InputError, match="not a run directory"):
        resultset.load(tmp_path)


def test_a_torn_last_line_is_dropped(tmp_path: Path) -> None:
    text = (RUN_612 / "results.jsonl").read_text()
    (tmp_path / "results.jsonl").write_text(text + '{"id": "cut-off", "verd')
    assert len(resultset.load(tmp_path).cases) == 28


# ---- comparing ------------------------------------------------------------------------------


def test_a_run_compared_with_itself_has_no_regression() -> None:
    c = compare.compare(resultset.load(MATRIX), resultset.load(MATRIX))
    assert c.exit_code == 0 and not c.regressions
    n = c.counts()
    assert n[Kind.KNOWN] == 4 and n[Kind.UNCHANGED] == 52 and sum(n.values()) == 56
    assert "compare: 0 regression, 0 fixed" in compare.render_text(c)


def _night2(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tonight's 6.12 run, made from last night's: one case of each kind of change."""
    set_verdict(recs, PASSING, "FAIL", "Leak from parent into child")  # regression
    set_verdict(recs, "cow.unshare.proc-mem.base", "PASS")  # fixed (FAIL last night, below)
    set_verdict(recs, "cow.unshare.odirect-write.thp", "ERROR", "timed out")  # still failing
    set_verdict(recs, "cow.unshare.proc-mem.thp", "ERROR", "timed out")  # and FAIL below: flaky
    set_verdict(recs, "cow.unshare.vmsplice.thp", "XPASS")  # regression: a stale expectation
    recs = [r for r in recs if r["id"] != "cow.unshare.odirect-read.thp"]  # removed
    new = copy.deepcopy(recs[0])
    new["id"] = "cow.unshare.brand-new.base"  # new, passing
    new_bad = dict(copy.deepcopy(recs[0]), id="cow.unshare.brand-new.thp", verdict="FAIL")  # new, failing
    # run twice: one case differs between the runs and was fine before (newly flaky), one
    # differs and was already failing (flaky, not news)
    again = [
        dict(r)
        for r in recs
        if r["id"]
        in ("cow.unshare.odirect-read.base", "cow.unshare.proc-mem.thp", "cow.unshare.process-vm-readv.thp")
    ]
    for r in again:
        r["verdict"] = {
            "cow.unshare.odirect-read.base": "FAIL",
            "cow.unshare.proc-mem.thp": "FAIL",
            "cow.unshare.process-vm-readv.thp": "FAIL",
        }[r["id"]]
    set_verdict(recs, "cow.unshare.process-vm-readv.thp", "PASS")
    return recs + [new, new_bad] + again


def _night1(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    set_verdict(recs, "cow.unshare.proc-mem.base", "FAIL", "Leak")
    set_verdict(recs, "cow.unshare.proc-mem.thp", "FAIL", "Leak")
    set_verdict(recs, "cow.unshare.odirect-write.thp", "FAIL", "Leak")
    set_verdict(recs, "cow.unshare.process-vm-readv.thp", "FAIL", "Leak")
    return recs


@pytest.fixture
def nights(tmp_path: Path) -> tuple[Path, Path]:
    return (
        edited_copy(RUN_612, tmp_path / "night1", _night1),
        edited_copy(RUN_612, tmp_path / "night2", _night2),
    )


def test_every_kind_of_change_is_found(nights: tuple[Path, Path]) -> None:
    c = compare.compare(resultset.load(nights[0]), resultset.load(nights[1]))
    kinds = {ch.id: ch.kind for ch in c.changes if ch.kind is not Kind.UNCHANGED}
    assert kinds == {
        PASSING: Kind.REGRESSION,
        "cow.unshare.vmsplice.thp": Kind.REGRESSION,
        "cow.unshare.brand-new.thp": Kind.REGRESSION,
        "cow.unshare.odirect-read.base": Kind.REGRESSION,  # newly flaky
        "cow.unshare.proc-mem.base": Kind.FIXED,
        "cow.unshare.odirect-write.thp": Kind.STILL_FAILING,  # FAIL, then ERROR
        "cow.unshare.proc-mem.thp": Kind.FLAKY,  # FAIL, then ERROR and FAIL: failing before, so not news
        "cow.unshare.process-vm-readv.thp": Kind.FLAKY,
        "cow.vmsplice.unmap-in-child.hugetlb-2m": Kind.KNOWN,
        "cow.unshare.brand-new.base": Kind.NEW,
        "cow.unshare.odirect-read.thp": Kind.REMOVED,
    }
    assert c.exit_code == 1 and len(c.regressions) == 4
    flaky = {ch.id: ch.new.rate_text() for ch in c.flaky if ch.new}
    assert flaky == {
        "cow.unshare.odirect-read.base": "1/2",
        "cow.unshare.proc-mem.thp": "0/2",
        "cow.unshare.process-vm-readv.thp": "1/2",
    }
    text = compare.render_text(c)
    assert (
        f"REGRESSION    debian:6.12  {PASSING}" in text
        and "PASS -> FAIL  Leak from parent into child" in text
    )
    assert text.rstrip().endswith(
        "compare: 4 regression, 1 fixed, 1 still failing, 2 flaky, 1 known, 1 new, 1 removed, 19 unchanged"
    )
    j = compare.to_json(c)
    assert j["regressions"] == 4 and j["counts"]["fixed"] == 1
    assert json.loads(json.dumps(j)) == j


def test_single_kernels_are_matched_whatever_their_labels() -> None:
    """6.1 against 6.12: what the newer kernel does differently, none of it a regression."""
    c = compare.compare(resultset.load(RUN_61), resultset.load(RUN_612))
    assert c.kernel_pairs == (("debian:6.1.0-56", "debian:6.12"),)
    assert c.exit_code == 0
    ch = next(x for x in c.changes if x.id == XFAIL_61)
    assert ch.kind is Kind.UNCHANGED and ch.verdict_changed
    assert "kernels matched: debian:6.1.0-56 -> debian:6.12" in compare.render_text(c)


def test_kernels_of_a_matrix_are_matched_by_label(tmp_path: Path) -> None:
    """A kernel added to the matrix brings new cases; one dropped takes its cases away."""
    new = resultset.load(MATRIX)
    old = resultset.load(RUN_612)
    old2 = resultset.ResultSet(
        "old",
        old.cases
        + tuple(
            resultset.CaseSummary("debian:6.6", "x", "p", Verdict.PASS, (Verdict.PASS,), "", "") for _ in [0]
        ),
        ("debian:6.12", "debian:6.6"),
    )
    c = compare.compare(old2, new)
    n = c.counts()
    assert n[Kind.NEW] + n[Kind.REGRESSION] == 28  # every debian:6.1.0-56 case is new
    assert n[Kind.REMOVED] == 1 and c.of(Kind.REMOVED)[0].kernel == "debian:6.6"
    assert c.exit_code == 0


# ---- kernel lines: tonight's matrix runs newer packages than last night's --------------------

NIGHT1 = [
    ("debian:6.1.0-56", "6.1.0-56-amd64", "6.1.192"),
    ("debian:6.12.117+deb12", "6.12.117+deb12-amd64", "6.12.117"),
    ("debian:7.2.11+deb13", "7.2.11+deb13-amd64", "7.2.11"),
]
NIGHT2 = [
    ("debian:6.1.0-57", "6.1.0-57-amd64", "6.1.193"),
    ("debian:6.12.118+deb12", "6.12.118+deb12-amd64", "6.12.118"),
    ("debian:7.2.12+deb13", "7.2.12+deb13-amd64", "7.2.12"),
]


def _regress_on_7_2(label: str, recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return set_verdict(recs, PASSING, "FAIL", "Leak") if label.startswith("debian:7.2") else recs


@pytest.mark.parametrize("identity", ["fingerprint", "matrix.json", "none"])
def test_new_packages_of_each_line_are_compared_with_the_old_ones(tmp_path: Path, identity: str) -> None:
    """Cases are matched by (line, id): one regression on the 7.2 line, not 84 removed and 84 new.
    Old matrix dirs (no fingerprints, no identity in matrix.json) pair by the labels' lines."""
    old = resultset.load(synthetic_matrix(tmp_path / "n1", NIGHT1, identity))
    new = resultset.load(synthetic_matrix(tmp_path / "n2", NIGHT2, identity, edit=_regress_on_7_2))
    c = compare.compare(old, new)
    n = c.counts()
    assert n[Kind.NEW] == n[Kind.REMOVED] == 0 and sum(n.values()) == 84
    assert [(ch.kernel, ch.id) for ch in c.regressions] == [("debian:7.2.12+deb13", PASSING)]
    assert c.kernel_pairs == tuple(zip([k[0] for k in NIGHT1], [k[0] for k in NIGHT2], strict=False))
    text = compare.render_text(c)
    if identity == "none":
        assert "6.1 line: 6.1.0-56 -> 6.1.0-57" in text
    else:
        assert "6.1 line: 6.1.0-56 (6.1.192) -> 6.1.0-57 (6.1.193)" in text
    assert "6.12 line: 6.12.117+deb12 -> 6.12.118+deb12" in text
    assert text.count("7.2 line: 7.2.11+deb13 -> 7.2.12+deb13") == 1 and "kernels matched" not in text
    assert text.index("6.1 line") < text.index("6.12 line") < text.index("7.2 line")  # version order
    j = compare.to_json(c)
    assert [k["how"] for k in j["kernels"]] == ["line"] * 3
    assert j["kernels"][0]["new"]["line"] == "6.1"


def test_the_same_labels_on_both_sides_are_matched_exactly_and_a_moved_package_is_said(
    tmp_path: Path,
) -> None:
    same = [("debian:6.1", "6.1.0-56-amd64", "6.1.192"), ("debian:6.12", "6.12.117+deb12-amd64", "6.12.117")]
    moved = [("debian:6.1", "6.1.0-57-amd64", "6.1.193"), ("debian:6.12", "6.12.117+deb12-amd64", "6.12.117")]
    c = compare.compare(
        resultset.load(synthetic_matrix(tmp_path / "a", same)),
        resultset.load(synthetic_matrix(tmp_path / "b", moved)),
    )
    assert c.kernel_pairs == (("debian:6.1", "debian:6.1"), ("debian:6.12", "debian:6.12"))
    assert c.moves() == ["6.1 line: 6.1.0-56 (6.1.192) -> 6.1.0-57 (6.1.193)"]  # 6.12 did not move
    assert c.exit_code == 0 and c.counts()[Kind.NEW] == c.counts()[Kind.REMOVED] == 0


def test_a_flavour_is_another_line(tmp_path: Path) -> None:
    old = [("debian:6.12.117+deb12-cloud", "6.12.117+deb12-cloud-amd64", "6.12.117"), NIGHT1[0]]
    new = [("debian:6.12.118+deb12", "6.12.118+deb12-amd64", "6.12.118"), NIGHT2[0]]
    c = compare.compare(
        resultset.load(synthetic_matrix(tmp_path / "a", old)),
        resultset.load(synthetic_matrix(tmp_path / "b", new)),
    )
    n = c.counts()
    assert (
        n[Kind.REMOVED] == 28
        and n[Kind.NEW] + n[Kind.REGRESSION] == 28
        and n[Kind.UNCHANGED] + n[Kind.KNOWN] == 28
    )
    assert c.moves() == ["6.1 line: 6.1.0-56 (6.1.192) -> 6.1.0-57 (6.1.193)"]


def test_a_matrix_without_the_new_fields_loads_and_compares(tmp_path: Path) -> None:
    """A matrix.json from before kernel lines, and a bare combined results.jsonl without one."""
    old_matrix = json.loads((MATRIX / "matrix.json").read_text())
    assert all("release" not in k for k in old_matrix["kernels"])
    write_records(tmp_path / "bare", records(MATRIX))
    c = compare.compare(resultset.load(tmp_path / "bare" / "results.jsonl"), resultset.load(MATRIX))
    assert c.exit_code == 0 and c.counts()[Kind.UNCHANGED] == 52 and c.moves() == []
