"""The bisect loop over an ordered kernel list (bisect_loop.Bisect + ListSpace) with fake
oracles: answers, endpoint checks, --reverse, skips, resume after Ctrl-C, and the record."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.bisect.bisect_loop import Bisect, ListSpace
from harness.bisect.core import Policy
from harness.errors import InputError
from tests.helpers.bisect_fakes import TEST, TableOracle

KERNELS = [f"debian:6.1.0-{n}" for n in range(47, 57)]  # 47..56, old to new


def table(
    first_bad: str, broken: tuple[str, ...] = (), bad: str = "not_ok", good: str = "ok"
) -> dict[str, str]:
    i = KERNELS.index(first_bad)
    return {k: "build" if k in broken else (bad if n >= i else good) for n, k in enumerate(KERNELS)}


DEFAULT_POLICY = Policy((TEST,))


def bisect(tmp_path: Path, oracle: TableOracle, policy: Policy = DEFAULT_POLICY, **kw: object) -> Bisect:
    return Bisect(ListSpace(KERNELS), oracle, policy, tmp_path / "b", progress=lambda s: None, **kw)  # type: ignore[arg-type]


def test_finds_the_first_bad_kernel_and_writes_the_record(tmp_path: Path) -> None:
    oracle = TableOracle(table("debian:6.1.0-53"))
    out = bisect(tmp_path, oracle, junit=tmp_path / "j.xml").run()
    assert out.exit_code == 0
    assert out.answer is not None and out.answer.first == ("debian:6.1.0-53",)
    assert oracle.calls[:2] == ["debian:6.1.0-47", "debian:6.1.0-56"]  # the ends first
    assert len(oracle.calls) <= 2 + 4
    state = json.loads((tmp_path / "b" / "bisect.json").read_text())
    assert state["answer"]["status"] == "found" and state["answer"]["first"] == ["debian:6.1.0-53"]
    assert state["answer"]["confidence"] == 1.0
    assert [s["role"] for s in state["steps"][:2]] == ["old endpoint", "new endpoint"]
    assert all(s["decision"] in ("good", "bad") for s in state["steps"])
    steps_txt = (tmp_path / "b" / "steps.txt").read_text()
    assert "debian:6.1.0-53" in steps_txt and f"{TEST}=not_ok" in steps_txt
    assert "first bad: debian:6.1.0-53" in (tmp_path / "b" / "summary.txt").read_text()
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite is not None
    names = [c.get("name") for c in suite.findall("testcase")]
    assert len(names) == len(oracle.calls) + 1 and names[-1] == "result"
    assert suite.find("testcase[@name='result']/failure") is None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["bisect.first"] == "debian:6.1.0-53" and props["bisect.status"] == "found"


def test_swapped_endpoints_are_refused(tmp_path: Path) -> None:
    # Old end bad, new end good: a fix, bisected as if it were a regression.
    oracle = TableOracle(table("debian:6.1.0-53", bad="ok", good="not_ok"))
    out = bisect(tmp_path, oracle).run()
    assert out.exit_code == 2
    assert out.answer is not None and out.answer.status == "endpoint-failed"
    assert "the first kernel debian:6.1.0-47 should be good but is bad" in out.answer.message
    assert "--reverse" in out.answer.message
    assert oracle.calls == ["debian:6.1.0-47"]  # stopped at once
    suite = ET.parse(tmp_path / "b" / "junit.xml").getroot()
    assert suite.find(".//testcase[@name='result']/failure") is not None


def test_new_end_not_bad_is_refused(tmp_path: Path) -> None:
    oracle = TableOracle({k: "ok" for k in KERNELS})
    out = bisect(tmp_path, oracle).run()
    assert out.exit_code == 2 and out.answer is not None
    assert "the last kernel debian:6.1.0-56 should be bad but is good" in out.answer.message


def test_reverse_finds_the_fix(tmp_path: Path) -> None:
    oracle = TableOracle(table("debian:6.1.0-50", bad="ok", good="not_ok"))
    out = bisect(tmp_path, oracle, Policy((TEST,), reverse=True)).run()
    assert out.exit_code == 0 and out.answer is not None
    assert out.answer.first == ("debian:6.1.0-50",)
    assert "first good: debian:6.1.0-50" in out.text


def test_without_endpoint_check_the_ends_are_assumed(tmp_path: Path) -> None:
    oracle = TableOracle(table("debian:6.1.0-49"))
    out = bisect(tmp_path, oracle, check_endpoints=False).run()
    assert out.answer is not None and out.answer.first == ("debian:6.1.0-49",)
    assert KERNELS[0] not in oracle.calls and KERNELS[-1] not in oracle.calls


def test_a_build_failure_is_skipped(tmp_path: Path) -> None:
    t = table("debian:6.1.0-53", broken=("debian:6.1.0-51", "debian:6.1.0-50"))
    oracle = TableOracle(t)
    out = bisect(tmp_path, oracle).run()
    assert out.answer is not None and out.answer.first == ("debian:6.1.0-53",)
    assert "debian:6.1.0-51" in oracle.calls  # the middle was tried, and skipped
    state = json.loads((tmp_path / "b" / "bisect.json").read_text())
    skipped = [s for s in state["steps"] if s["decision"] == "skip"]
    assert skipped and skipped[0]["status"] == "build-failed"


def test_skips_next_to_the_answer_leave_a_range(tmp_path: Path) -> None:
    t = table("debian:6.1.0-53", broken=("debian:6.1.0-52",))
    out = bisect(tmp_path, TableOracle(t)).run()
    assert out.exit_code == 1
    assert out.answer is not None and out.answer.status == "ambiguous"
    assert out.answer.first == ("debian:6.1.0-52", "debian:6.1.0-53")
    assert out.answer.confidence is not None and out.answer.confidence.value == 0.5
    assert "only skipped candidates left" in out.text


def test_an_unrelated_crash_does_not_steer(tmp_path: Path) -> None:
    # Every run also has an unrelated case that errors: the answer is the named test's.
    oracle = TableOracle(table("debian:6.1.0-55"), other="error")
    out = bisect(tmp_path, oracle).run()
    assert out.answer is not None and out.answer.first == ("debian:6.1.0-55",)


def test_ctrl_c_leaves_a_state_the_same_command_resumes(tmp_path: Path) -> None:
    t = table("debian:6.1.0-52")
    first = TableOracle(t, interrupt_at=4)
    out = bisect(tmp_path, first).run()
    assert out.exit_code == 130 and out.answer is None
    state = json.loads((tmp_path / "b" / "bisect.json").read_text())
    assert len(state["steps"]) == 3 and state["answer"] is None
    assert "rerun the same command" in (tmp_path / "b" / "summary.txt").read_text()
    again = TableOracle(t)
    out2 = bisect(tmp_path, again).run()
    assert out2.answer is not None and out2.answer.first == ("debian:6.1.0-52",)
    assert not set(again.calls) & set(first.calls)  # nothing tested twice
    # A finished bisect run again tests nothing and gives the same answer.
    third = TableOracle(t)
    out3 = bisect(tmp_path, third).run()
    assert third.calls == [] and out3.answer == out2.answer


def test_a_different_bisect_in_the_same_dir_is_refused(tmp_path: Path) -> None:
    bisect(tmp_path, TableOracle(table("debian:6.1.0-52"))).run()
    with pytest.raises(InputError, match="holds a different bisect"):
        Bisect(ListSpace(KERNELS[:5]), TableOracle({}), Policy((TEST,)), tmp_path / "b")
    # --restart discards it.
    b = Bisect(
        ListSpace(KERNELS[:5]),
        TableOracle(table("debian:6.1.0-49")),
        Policy((TEST,)),
        tmp_path / "b",
        restart=True,
    )
    assert b.run().answer is not None


def test_flaky_test_with_repeats(tmp_path: Path) -> None:
    # A bad kernel shows the failure in 2 of 3 runs; the good ones never.
    def words(k: str) -> str:
        return "not_ok ok not_ok" if KERNELS.index(k) >= KERNELS.index("debian:6.1.0-54") else "ok ok ok"

    out = bisect(tmp_path, TableOracle(words), Policy((TEST,), runs=3)).run()
    assert out.answer is not None and out.answer.first == ("debian:6.1.0-54",)
    assert out.answer.confidence is not None and out.answer.confidence.value < 1.0


def test_policy_change_on_resume_rejudges_saved_steps(tmp_path: Path) -> None:
    # The same observations judged the other way round: the saved steps are reused.
    t = table("debian:6.1.0-52", bad="ok", good="not_ok")
    out = bisect(tmp_path, TableOracle(t)).run()
    assert out.exit_code == 2
    again = TableOracle(t)
    out2 = bisect(tmp_path, again, Policy((TEST,), reverse=True)).run()
    assert out2.answer is not None and out2.answer.first == ("debian:6.1.0-52",)
    assert KERNELS[0] not in again.calls
