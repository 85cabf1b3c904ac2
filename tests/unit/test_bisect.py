"""The bisect decision core (harness/bisect/core.py): judging steps, the list search, confidence."""

from __future__ import annotations

import dataclasses
import math

import pytest

from harness.bisect.bisect_report import step_line
from harness.bisect.core import (
    CaseObs,
    Decision,
    Judge,
    Policy,
    RunObs,
    Side,
    Status,
    StepRecord,
    StepResult,
    case_state,
    confidence,
    decide,
    endpoint_message,
    flaky,
    plan,
    run_state,
    settled,
    side_of,
    step_from_dict,
    step_summary,
    step_to_dict,
)
from tests.helpers.bisect_fakes import OTHER, TEST, run, step

P = Policy((TEST,))


def test_outcome_judge_tells_6_1_from_6_12_where_verdicts_cannot() -> None:
    # cow.unshare.odirect-write.base: not ok on 6.1 (expected there: XFAIL), ok on 6.12 (PASS).
    on_61 = CaseObs(TEST, "not_ok", "XFAIL")
    on_612 = CaseObs(TEST, "ok", "PASS")
    assert case_state(on_61, Judge.OUTCOME) is Decision.BAD
    assert case_state(on_612, Judge.OUTCOME) is Decision.GOOD
    # Both are "as expected": the verdict judge sees no difference.
    assert case_state(on_61, Judge.VERDICT) is Decision.GOOD
    assert case_state(on_612, Judge.VERDICT) is Decision.GOOD


@pytest.mark.parametrize(
    "outcome,verdict,by_outcome,by_verdict",
    [
        ("ok", "PASS", "good", "good"),
        ("ok", "XPASS", "good", "bad"),
        ("ok", "FAIL", "good", "bad"),  # a kernel WARNING during the case: only the verdict sees it
        ("not_ok", "FAIL", "bad", "bad"),
        ("xfail", "XFAIL", "bad", "good"),
        ("error", "ERROR", "bad", "bad"),
        ("skip", "SKIP", "skip", "skip"),
        ("todo", "SKIP", "skip", "skip"),
    ],
)
def test_case_state(outcome: str, verdict: str, by_outcome: str, by_verdict: str) -> None:
    c = CaseObs(TEST, outcome, verdict)
    assert case_state(c, Judge.OUTCOME).value == by_outcome
    assert case_state(c, Judge.VERDICT).value == by_verdict


def test_only_the_named_tests_decide() -> None:
    # An unrelated case crashing (ERROR) in the same run does not make the run bad.
    assert run_state(run("ok", other="error"), P) is Decision.GOOD
    assert run_state(run("not_ok", other="ok"), P) is Decision.BAD


def test_several_tests_any_bad_is_bad_all_good_is_good() -> None:
    pol = Policy((TEST, OTHER))
    assert run_state(run("ok", "ok", tests=(TEST, OTHER)), pol) is Decision.GOOD
    assert run_state(run("ok", "not_ok", tests=(TEST, OTHER)), pol) is Decision.BAD
    assert run_state(run("ok", "skip", tests=(TEST, OTHER)), pol) is Decision.SKIP
    assert run_state(run("ok", tests=(TEST,)), pol) is Decision.SKIP  # OTHER missing


@pytest.mark.parametrize(
    "words,runs,threshold,expected",
    [
        (("ok",), 1, None, Decision.GOOD),
        (("not_ok",), 1, None, Decision.BAD),
        (("ok", "ok", "ok"), 3, None, Decision.GOOD),
        (("not_ok", "not_ok", "ok"), 3, None, Decision.BAD),  # max(2, 3/6) = 2
        (("not_ok", "ok", "ok"), 3, None, Decision.SKIP),  # neither all good nor enough bad
        (("not_ok", "ok", "ok"), 3, 1, Decision.BAD),  # --bad-threshold 1: a rare flake counts
        (("ok", "skip", "ok"), 3, None, Decision.SKIP),
        (("not_ok", "not_ok"), 4, None, Decision.BAD),  # max(2, 4/6) = 2: settled after two
        (("not_ok",) + ("ok",) * 9, 10, None, Decision.SKIP),  # a lone bad run among good: flaky
        (("not_ok",) * 2 + ("ok",) * 16, 18, None, Decision.SKIP),  # 18/6 = 3 needed
        (("not_ok",) * 3 + ("ok",) * 15, 18, None, Decision.BAD),
        (("ok", "ok"), 3, None, Decision.SKIP),  # not all runs done: not good
    ],
)
def test_decide_with_repeats(
    words: tuple[str, ...], runs: int, threshold: int | None, expected: Decision
) -> None:
    pol = Policy((TEST,), runs=runs, bad_threshold=threshold)
    assert decide(step(*words), pol) is expected


def test_build_and_boot_failures() -> None:
    assert decide(step("build"), P) is Decision.SKIP
    assert decide(step("build"), Policy((TEST,), bisect_boot=True)) is Decision.SKIP
    assert decide(step("boot"), P) is Decision.SKIP
    assert decide(step("boot"), Policy((TEST,), bisect_boot=True)) is Decision.BAD
    # A run that did not boot among runs that did: undecided, or bad with bisect_boot.
    mixed = StepResult(Status.RAN, (run("ok"), RunObs(boot_failed=True)))
    assert decide(mixed, Policy((TEST,), runs=2)) is Decision.SKIP
    assert decide(mixed, Policy((TEST,), runs=2, bad_threshold=1, bisect_boot=True)) is Decision.BAD


def test_settled_stops_early_only_when_nothing_can_change() -> None:
    pol = Policy((TEST,), runs=3)
    assert not settled([run("ok")], pol)
    assert not settled([run("ok"), run("ok")], pol)
    assert settled([run("ok"), run("ok"), run("ok")], pol)
    assert settled([run("not_ok"), run("not_ok")], pol)  # 2 of 3: bad whatever comes
    assert not settled([run("not_ok")], pol)
    assert not settled([run("not_ok"), run("ok")], pol)  # the third decides bad or skip
    assert not settled([run("skip")], pol)  # two more bad runs would still make it bad
    assert settled([run("skip"), run("skip")], pol)  # cannot be good, cannot reach 2 bad


def test_policy_problems() -> None:
    assert Policy(()).problems()
    assert Policy((TEST,), runs=0).problems()
    assert Policy((TEST,), runs=3, bad_threshold=4).problems()
    assert not Policy((TEST,), runs=3, bad_threshold=1).problems()
    assert [Policy((TEST,), runs=n).threshold for n in (1, 2, 3, 6, 12, 13, 18, 19)] == [
        1,
        2,
        2,
        2,
        2,
        3,
        3,
        4,
    ]


def test_sides_normal_and_reverse() -> None:
    rev = Policy((TEST,), reverse=True)
    assert side_of(Decision.GOOD, P) is Side.OLD and side_of(Decision.BAD, P) is Side.NEW
    assert side_of(Decision.BAD, rev) is Side.OLD and side_of(Decision.GOOD, rev) is Side.NEW
    assert side_of(Decision.SKIP, rev) is None


# ---- the list search ------------------------------------------------------------------------


def simulate(n: int, first_new: int, skipped: set[int] = frozenset()) -> tuple[tuple[int, ...], list[int]]:  # type: ignore[assignment]
    sides: dict[int, Side | None] = {}
    tested: list[int] = []
    while True:
        p = plan(n, sides)
        if p.done:
            return p.possible, tested
        assert p.index is not None and p.index not in sides
        tested.append(p.index)
        sides[p.index] = None if p.index in skipped else (Side.NEW if p.index >= first_new else Side.OLD)


@pytest.mark.parametrize("n", [2, 3, 4, 7, 10, 33])
def test_plan_finds_every_first_new_in_log_steps(n: int) -> None:
    for first in range(1, n):
        possible, tested = simulate(n, first)
        assert possible == (first,)
        assert len(tested) <= math.ceil(math.log2(max(2, n - 1)))


def test_plan_with_skips_names_the_range() -> None:
    # 0 old, 3 first new; 2 cannot be tested: the answer is "2 or 3".
    possible, tested = simulate(6, 3, skipped={2})
    assert possible == (2, 3)
    # A skip away from the answer costs a step, not the answer.
    possible, tested = simulate(10, 7, skipped={4, 5})
    assert possible == (7,)


def test_plan_tries_near_the_middle_after_a_skip() -> None:
    sides: dict[int, Side | None] = {4: None}
    assert plan(9, sides).index == 3  # 4 skipped: nearest to the middle, lower first
    assert plan(9, {4: None, 3: None}).index == 5


def test_plan_needs_two() -> None:
    with pytest.raises(ValueError):
        plan(1, {})


# ---- confidence -----------------------------------------------------------------------------


def test_confidence_exact_without_flakes_is_one() -> None:
    c = confidence([step("ok"), step("not_ok"), step("not_ok")], P, 1)
    assert c.value == 1.0 and "exact" in c.text and "--runs" in c.text


def test_confidence_halves_with_a_skipped_neighbour() -> None:
    c = confidence([step("ok"), step("build"), step("not_ok")], P, 2)
    assert c.value == 0.5 and "one of 2" in c.text


def test_confidence_drops_with_flakes_and_rises_with_repeats() -> None:
    pol = Policy((TEST,), runs=3)
    flaky = [step("ok", "ok", "ok"), step("not_ok", "not_ok", "ok"), step("not_ok", "not_ok", "not_ok")]
    c = confidence(flaky, pol, 1)
    assert 0.5 < c.value < 1.0 and "1 run(s) disagreed" in c.text
    pol5 = Policy((TEST,), runs=5, bad_threshold=3)
    more = [step(*["ok"] * 5), step("not_ok", "not_ok", "not_ok", "not_ok", "ok"), step(*["not_ok"] * 5)]
    assert confidence(more, pol5, 1).value > c.value


def test_a_lone_bad_run_is_a_flake_and_counts_in_the_flake_rate() -> None:
    pol = Policy((TEST,), runs=6)  # bad at max(2, 6/6) = 2 bad runs
    lone = step("ok", "ok", "not_ok", "ok", "ok", "ok")
    assert decide(lone, pol) is Decision.SKIP and flaky(lone, pol)
    assert not flaky(step(*["ok"] * 6), pol) and not flaky(step("build"), pol)
    clean = [step(*["ok"] * 6), step(*["not_ok"] * 2)]
    c0 = confidence(clean, pol, 1)
    assert c0.value == 1.0 and "no run disagreed" in c0.text
    c1 = confidence([*clean, lone], pol, 1)
    # f = 1 flaky run in 14 runs: a good step of 6 is wrong with f^6, a bad step of 2 with f^2.
    f = 1 / 14
    assert c1.value == round((1 - f**6) * (1 - f**2), 3)
    assert "1 step(s) skipped as flaky" in c1.text and "flake rate 7%" in c1.text
    line = step_line(3, StepRecord("x", "x", "step", lone, Decision.SKIP, None), pol)
    assert "[flaky: 1 of 6 runs bad, below 2]" in line


def test_proofs_lower_the_confidence() -> None:
    from harness.bisect.core import (
        NOT_RESTORED,
        UNTESTED,
        VERIFIED,
        Confidence,
        judge_revert,
        noop_culprit,
        proven,
    )

    base = Confidence(0.9, "exact")
    good, bad = step("ok"), step("not_ok")
    assert judge_revert("c", "n", good, P).status == VERIFIED
    assert judge_revert("c", "n", bad, P).status == NOT_RESTORED
    assert judge_revert("c", "n", step("build"), P).status == UNTESTED
    # --reverse: the culprit is a fix; reverting it must bring the bad behaviour back.
    assert judge_revert("c", "n", bad, Policy((TEST,), reverse=True)).status == VERIFIED
    assert proven(base, judge_revert("c", "n", good, P), False).value == 0.9
    doubt = proven(base, judge_revert("c", "n", bad, P), False)
    assert doubt.value == 0.09 and "revert does not restore" in doubt.text
    h = dataclasses.replace(good, build_hash="vmlinux:ab")
    assert noop_culprit(h, [h]) and not noop_culprit(h, [good]) and not noop_culprit(good, [good])
    assert "no-op culprit" in proven(base, None, True).text and proven(base, None, True).value == 0.09


# ---- records and messages -------------------------------------------------------------------


def test_step_record_round_trip() -> None:
    res = StepResult(
        Status.RAN,
        (run("not_ok", other="error"), RunObs(boot_failed=True, detail="no init")),
        "",
        12.5,
        40.25,
        "vmlinux:0123",
    )
    rec = StepRecord("debian:6.1.0-56", "debian:6.1.0-56", "old endpoint", res, Decision.BAD, Side.NEW)
    back = step_from_dict(step_to_dict(rec))
    assert back == rec


def test_step_summary() -> None:
    assert step_summary(step("not_ok", "not_ok"), P) == f"{TEST}=not_ok (x2)"
    assert step_summary(step("ok"), P) == f"{TEST}=ok"
    assert step_summary(step("build"), P).startswith("build-failed: mm/util.c:1")
    assert step_summary(StepResult(Status.RAN, (RunObs(),)), P) == f"{TEST}=missing"


def test_endpoint_message_says_what_to_do() -> None:
    rec = StepRecord(
        "debian:6.1.0-56",
        "debian:6.1.0-56",
        "old endpoint",
        StepResult(Status.RAN, (RunObs((CaseObs(TEST, "not_ok", "XFAIL"),)),)),
        Decision.BAD,
        Side.NEW,
    )
    msg = endpoint_message(rec, Decision.GOOD, P, "the first kernel")
    assert msg.startswith("the first kernel debian:6.1.0-56 should be good but is bad")
    assert "not_ok(XFAIL)" in msg and "--reverse" in msg
    skipped = StepRecord("x", "x", "old endpoint", step("build"), Decision.SKIP, None)
    assert "--no-check-endpoints" in endpoint_message(skipped, Decision.GOOD, P, "--good")
