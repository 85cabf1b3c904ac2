"""harness.run.runner pure parts: KTAP root → CaseResults per requested id, not_run, guest facts."""

from __future__ import annotations

from pathlib import Path

from harness import model
from harness.judge import expect, ktap, outcomes
from harness.model import CaseResult, Kernel, KernelVersion, Outcome, Verdict
from harness.run import guestfacts
from harness.suites import registry as suites

PROG = suites.Program("cow", "cow", Path("/build/cow"), "cow_tests/cow")
IDS = ("cow.a", "cow.b", "cow.c")
SEL = suites.Selected(PROG, IDS)

K61 = Kernel(
    spec="debian:6.1.0-56",
    bzimage=Path("/k"),
    release="6.1.0-56-amd64",
    version=KernelVersion(6, 1, 192),
    modules_dir=None,
    config={"CONFIG_GUP_TEST": "y"},
)
K612 = Kernel(
    spec="debian:6.12",
    bzimage=Path("/k"),
    release="6.12.117+deb12-amd64",
    version=KernelVersion(6, 12, 117),
    modules_dir=None,
)

RULES = expect.parse(
    """\
version: 1
rules:
  - match: "cow.b"
    expect: fail
    kernel: "<6.5"
    reason: "known gap before 6.5"
    commit: "0123456789ab"
  - match: "cow.c"
    expect: skip
    kernel: "<6.8"
    reason: "no mTHP before 6.8"
    commit: "3485b88390b0 (6.8)"
""",
    "exp.yaml",
)
EMPTY = expect.RuleSet()


def by_id(results: list[CaseResult]) -> dict[str, CaseResult]:
    return {r.id: r for r in results}


def test_named_results_with_expectation_applied() -> None:
    root = ktap.parse("KTAP version 1\n1..3\nok 1 cow.a\n# leak!\nnot ok 2 cow.b\nok 3 cow.c # SKIP no THP\n")
    res = outcomes.case_results(SEL, root, RULES, K61)
    assert [r.id for r in res] == list(IDS)  # request order
    r = by_id(res)
    assert (r["cow.a"].outcome, r["cow.a"].verdict) == (Outcome.OK, Verdict.PASS)
    assert (r["cow.b"].outcome, r["cow.b"].verdict) == (Outcome.NOT_OK, Verdict.XFAIL)
    assert r["cow.b"].expectation.reason == "known gap before 6.5"
    assert r["cow.b"].expectation.source == "exp.yaml:3"
    assert r["cow.b"].output == "leak!"
    assert (r["cow.c"].outcome, r["cow.c"].verdict, r["cow.c"].reason) == (
        Outcome.SKIP,
        Verdict.SKIP,
        "no THP",
    )
    assert r["cow.c"].expectation.source == "exp.yaml:8"
    assert all(x.program == "cow" for x in res)


def test_a_skip_no_rule_explains_is_an_error_with_the_tests_reason() -> None:
    root = ktap.parse("KTAP version 1\n1..3\nok 1 cow.a\nok 2 cow.b\nok 3 cow.c # SKIP no THP\n")
    c = by_id(outcomes.case_results(SEL, root, RULES, K612))["cow.c"]  # the skip rule is for <6.8
    assert (c.outcome, c.verdict) == (Outcome.SKIP, Verdict.ERROR)
    assert c.reason == "skipped, and no expectation says why: no THP"


def test_expectation_depends_on_kernel() -> None:
    root = ktap.parse("KTAP version 1\n1..3\nok 1 cow.a\nnot ok 2 cow.b\nok 3 cow.c\n")
    assert by_id(outcomes.case_results(SEL, root, RULES, K612))["cow.b"].verdict is Verdict.FAIL
    root = ktap.parse("KTAP version 1\n1..3\nok 1 cow.a\nok 2 cow.b\nok 3 cow.c\n")
    assert by_id(outcomes.case_results(SEL, root, RULES, K61))["cow.b"].verdict is Verdict.XPASS


def test_missing_ids_are_errors_with_the_program_error() -> None:
    # Output cut off after the first result: the parser's ERROR nodes carry the reason.
    root = ktap.parse("KTAP version 1\n1..3\nok 1 cow.a\n")
    r = by_id(outcomes.case_results(SEL, root, EMPTY, K612, "program exited 139: Segmentation fault"))
    assert r["cow.a"].verdict is Verdict.PASS
    for cid in ("cow.b", "cow.c"):
        assert r[cid].outcome is Outcome.ERROR and r[cid].verdict is Verdict.ERROR
        assert r[cid].reason  # never an empty reason


def test_no_output_at_all() -> None:
    res = outcomes.case_results(SEL, ktap.parse(""), EMPTY, K612, "program exited 127: not found")
    assert [(r.outcome, r.verdict, r.reason) for r in res] == [
        (Outcome.ERROR, Verdict.ERROR, "program exited 127: not found")
    ] * 3
    res = outcomes.case_results(SEL, model.TestNode(""), EMPTY, K612)
    assert {r.reason for r in res} == {"the program did not report this case"}


def test_ids_the_program_never_mentions() -> None:
    # No plan, two named results: the third id was simply not reported.
    root = ktap.parse("KTAP version 1\nok 1 cow.a\nok 2 cow.b\n")
    r = by_id(outcomes.case_results(SEL, root, EMPTY, K612))
    assert r["cow.c"].verdict is Verdict.ERROR
    assert r["cow.c"].reason == "the program did not report this case"


def test_number_fallback_for_generic_names() -> None:
    # kselftest-style: results named by description, not by id; position decides.
    root = ktap.parse(
        "TAP version 13\n1..3\n# [RUN] first\nok 1 No leak from parent into child\n"
        "not ok 2 Leak from child into parent\nok 3 # SKIP MADV_PAGEOUT did not work\n"
    )
    r = by_id(outcomes.case_results(SEL, root, EMPTY, K612))
    assert r["cow.a"].verdict is Verdict.PASS and r["cow.a"].output == "[RUN] first"
    assert r["cow.b"].verdict is Verdict.FAIL and r["cow.b"].reason == ""
    assert r["cow.c"].verdict is Verdict.ERROR and "MADV_PAGEOUT" in r["cow.c"].reason


def test_names_win_over_numbers() -> None:
    # Reported out of order but by name: each id gets its own line.
    root = ktap.parse("KTAP version 1\n1..3\nok 1 cow.c\nnot ok 2 cow.a\nok 3 cow.b\n")
    r = by_id(outcomes.case_results(SEL, root, EMPTY, K612))
    assert r["cow.a"].outcome is Outcome.NOT_OK
    assert r["cow.b"].outcome is Outcome.OK and r["cow.c"].outcome is Outcome.OK


def test_numbers_out_of_range_are_ignored() -> None:
    root = ktap.parse("KTAP version 1\nok 7 whatever\nok 0 zero\n")
    res = outcomes.case_results(SEL, root, EMPTY, K612)
    assert all(x.verdict is Verdict.ERROR for x in res)


def test_subset_of_ids() -> None:
    sel = suites.Selected(PROG, ("cow.b",))
    root = ktap.parse("KTAP version 1\n1..1\nnot ok 1 cow.b\n")
    (res,) = outcomes.case_results(sel, root, RULES, K61)
    assert (res.id, res.verdict) == ("cow.b", Verdict.XFAIL)


def test_not_run_skips_done_ids_and_applies_expectations() -> None:
    res = outcomes.not_run(SEL, {"cow.a"}, "not run: guest lost", RULES, K61)
    assert [r.id for r in res] == ["cow.b", "cow.c"]
    assert all(r.verdict is Verdict.ERROR and r.reason == "not run: guest lost" and r.not_run for r in res)
    assert res[0].expectation.expect == "fail"
    # Before the kernel is known there is no expectation to apply.
    res = outcomes.not_run(SEL, set(), "not run: kernel", RULES, None)
    assert {r.expectation.expect for r in res} == {"pass"} and len(res) == 3


def test_guest_facts() -> None:
    text = (
        "kernel=6.12.117+deb12-amd64\r\nnproc=2\n"
        "thp_enabled=always [madvise] never\nthp_defrag=\nhugepages_total=0\n"
        "swap=0\nmemtotal_kib=1001234\ndebugfs=yes\ngup_test=no\n"
        "perf_event_paranoid=2\n[   12.345678] random: crng init done\nstray line\n"
        "weird=a=b\n"
    )
    f = guestfacts.guest_facts(text)
    assert f["kernel"] == "6.12.117+deb12-amd64"
    assert f["nproc"] == "2"
    assert f["thp_enabled"] == "always [madvise] never"
    assert f["thp_defrag"] == ""
    assert f["gup_test"] == "no" and f["debugfs"] == "yes"
    assert f["weird"] == "a=b"
    assert "stray line" not in f and not any("crng" in k for k in f)


def test_guest_facts_keys_match_the_command() -> None:
    # Every fact the command echoes comes back as a key when each echo prints its line.
    keys = [
        part.split("echo ", 1)[1].split("=", 1)[0]
        for part in guestfacts.GUEST_FACTS.split(";")
        if "echo " in part
    ]
    sample = "\n".join(f"{k}=x" for k in keys)
    assert sorted(guestfacts.guest_facts(sample)) == sorted(keys)


def test_a_skip_read_back_from_the_kernel_log_is_judged_like_one_from_ktap() -> None:
    section = (
        "[    1.000000] harness: ok 1 cow.a\n"
        "[    1.100000] harness: ok 2 cow.b # SKIP MADV_PAGEOUT did not swap\n"
        "[    1.200000] harness: ok 3 cow.c # SKIP no THP\n"
    )
    res, rerun = outcomes.after_guest_loss(SEL, section, "guest lost", RULES, K61)
    r = by_id(res)
    assert rerun == [] and r["cow.a"].verdict is Verdict.PASS
    assert (r["cow.b"].outcome, r["cow.b"].verdict) == (Outcome.SKIP, Verdict.ERROR)
    assert r["cow.b"].reason == "skipped, and no expectation says why: MADV_PAGEOUT did not swap"
    assert (r["cow.c"].verdict, r["cow.c"].reason) == (Verdict.SKIP, "no THP")  # the rule for <6.8
