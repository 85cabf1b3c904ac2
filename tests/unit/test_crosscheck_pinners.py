"""The cross-check of our two kinds of long-term pin: RDMA registrations vs gup_test/harness_pin."""

from __future__ import annotations

from pathlib import Path

from harness.model import CaseResult, Expect, Expectation, Kernel, KernelVersion, Outcome, Verdict
from harness.run import runner
from harness.suites import crosscheck
from tests.helpers.paths import DATA

CASE_IDS = DATA / "golden" / "case_ids"


def _r(i: str, o: Outcome, v: Verdict) -> CaseResult:
    return CaseResult(i, i.split(".")[1], o, v, "", "", Expectation(Expect.PASS))


def test_every_pair_names_real_cases() -> None:
    ids = {i for f in CASE_IDS.glob("*.txt") for i in f.read_text().split()}
    pairs = crosscheck.rdma_gup_map()
    assert len(pairs) == 13
    assert [(a, b) for a, b, _ in pairs if a not in ids or b not in ids] == []


def _seed004_on(version: tuple[int, ...]) -> list[crosscheck.PinnerPair]:
    # 6.1 as observed: the RDMA R/O registration write-faults (works), the R/O pin is stale.
    return crosscheck.pinner_pairs(
        [
            _r("cow.rdma-ro.write.zeropage", Outcome.OK, Verdict.PASS),
            _r("cow.gup-fast-pin-ro.private-mapping.zeropage", Outcome.NOT_OK, Verdict.XFAIL),
            _r("cow.rdma-rw.shared.ext4-shared", Outcome.NOT_OK, Verdict.XFAIL),
            _r("cow.gup-fast-longterm.rw-pin.ext4-shared", Outcome.NOT_OK, Verdict.XFAIL),
            _r("cow.rdma-rw.shared.tmpfs-shared", Outcome.OK, Verdict.PASS),
            _r("cow.gup-fast-longterm.rw-pin.tmpfs-shared", Outcome.SKIP, Verdict.SKIP),
        ],
        version,
    )


def test_pairs_are_compared_by_what_they_observed_and_by_version() -> None:
    old = _seed004_on((6, 1, 192))
    assert [(p.rdma.id, p.status) for p in old] == [
        ("cow.rdma-ro.write.zeropage", "differ by design"),  # FOLL_WRITE|FOLL_FORCE before 6.2
        ("cow.rdma-rw.shared.tmpfs-shared", "not compared"),
        ("cow.rdma-rw.shared.ext4-shared", "agree"),  # both granted before 6.5
    ]
    new = _seed004_on((6, 12, 118))
    assert [p.status for p in new] == ["DISAGREE", "not compared", "agree"]
    text = crosscheck.pinner_table(new, "module")
    assert "DISAGREE         PASS   XFAIL  cow.rdma-ro.write.zeropage  <->  " in text
    assert text.splitlines()[-1].startswith(
        "pinner cross-check: 3 pairs: 1 agree, 1 disagree, 1 not compared"
    )


def test_a_pinner_disagreement_is_exit_1_and_written(tmp_path: Path) -> None:
    results = [
        _r("cow.rdma-ro.file-update.ext4-private", Outcome.OK, Verdict.PASS),
        _r("cow.gup-pin-ro.file-update.ext4-private", Outcome.NOT_OK, Verdict.FAIL),
    ]
    k = Kernel("k", Path("/x"), "6.12.118", KernelVersion(6, 12, 118), None)
    out = runner.RunOutcome(tmp_path, list(results))
    runner.cross_check(out, k, {"pinner": "module"})
    assert out.exit_code == 1
    assert out.crosscheck.startswith("DISAGREE  cow.rdma-ro.file-update.ext4-private (PASS)  <->  ")
    assert "cow_gup (module)" in (tmp_path / "crosscheck.txt").read_text()
    old = runner.RunOutcome(tmp_path / "o", list(results))
    (tmp_path / "o").mkdir()
    runner.cross_check(old, Kernel("k", Path("/x"), "6.1.192", KernelVersion(6, 1, 192), None), {})
    assert old.exit_code == 0 and "differ by design" in (tmp_path / "o" / "crosscheck.txt").read_text()
