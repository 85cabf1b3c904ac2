"""harness.expect: loading and validating expectations, version ranges, precedence, the judge."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError, InputError
from harness.judge.expect import (
    RuleSet,
    expectation_for,
    judge,
    judge_case,
    load,
    matching_rules,
    parse,
    parse_range,
    parse_version,
    version_in_range,
)
from harness.model import Expect, Expectation, Kernel, KernelVersion, Outcome, Verdict
from tests.helpers import paths
from tests.helpers.known_ids import FIRST_SLICE_IDS
from tests.helpers.paths import REPO

DATA = paths.DATA / "expect"
REPO_FILE = REPO / "expectations.yaml"

FIRST_CASES = FIRST_SLICE_IDS


def kernel(version: str = "6.12.117", config: dict[str, str] | None = None) -> Kernel:
    return Kernel(
        spec="test",
        bzimage=Path("/nonexistent/bzImage"),
        release=version,
        version=parse_version(version),
        modules_dir=None,
        config=dict(config or {}),
    )


def rules(body: str) -> RuleSet:
    """A rule set from the text of the `rules:` list (indented by two spaces per rule)."""
    return parse("version: 1\nrules:\n" + body, "t.yaml")


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as ei:
        parse(text, "t.yaml")
    return str(ei.value)


# --- loading a good file ------------------------------------------------------------------


def test_good_file_loads_with_sources_and_fields() -> None:
    rs = load(DATA / "good.yaml")
    assert rs.path == str(DATA / "good.yaml")
    assert [r.source for r in rs.rules] == [f"{DATA / 'good.yaml'}:{n}" for n in (4, 9, 15, 24)]
    hugetlb, skip, pin, override = rs.rules
    assert hugetlb.match == ("cow.vmsplice.*.hugetlb-*",)
    assert (hugetlb.expect, hugetlb.commit, hugetlb.kernel) == ("fail", "none", None)
    assert skip.match == ("cow.pin.ro.*", "cow.pin.ro-fast.*")
    assert skip.config == (("CONFIG_GUP_TEST", "n"),)
    assert skip.commit.startswith("none:")
    assert pin.config == (("CONFIG_GUP_TEST", "y"), ("CONFIG_HZ", "250"))  # an int kept as text
    assert pin.commit == "84209e87c696"
    assert pin.kernel is not None and pin.kernel.spec == ">=5.19,<6.2"
    assert override.expect == "pass" and override.reason.startswith("pretend")


def test_empty_rule_list_is_valid() -> None:
    assert parse("version: 1\nrules: []\n", "t.yaml").rules == ()


def test_pass_rule_needs_no_reason_and_commit_may_be_a_number() -> None:
    rs = rules('  - match: "a.*"\n    expect: pass\n    commit: 12345678\n')
    assert rs.rules[0].reason == "" and rs.rules[0].commit == "12345678"


# --- bad files: message is FILE:LINE: reason ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "line", "fragment"),
    [
        ("syntax-error.yaml", 5, "YAML syntax error"),  # the unterminated quote, not EOF
        ("unknown-key.yaml", 9, "unknown key 'comit'"),
        ("bad-expect.yaml", 4, "expect must be one of pass, fail, skip, got 'flaky'"),
        ("bad-range.yaml", 10, "matches no version"),
        ("missing-reason.yaml", 5, "expect fail needs a 'reason'"),
    ],
)
def test_bad_file_reports_file_and_line(name: str, line: int, fragment: str) -> None:
    path = DATA / name
    with pytest.raises(ConfigError) as ei:
        load(path)
    msg = str(ei.value)
    assert msg.startswith(f"{path}:{line}: "), msg
    assert fragment in msg


Y = "version: 1\nrules:\n"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "empty file"),
        ("# nothing\n", 1, "empty file"),
        ("- a\n- b\n", 1, "top level: expected a mapping"),
        ("version: 1\n", 1, "missing 'rules'"),
        ("rules: []\n", 1, "missing 'version'"),
        ("version: 2\nrules: []\n", 1, "version: expected 1, got '2'"),
        ("version: '1'\nrules: []\n", 1, "version: expected 1"),
        ("version: 1\nrules:\n", 2, "rules: expected a list, got nothing"),
        ("version: 1\nrules: []\nextra: 1\n", 3, "unknown key 'extra'"),
        ("version: 1\nversion: 1\nrules: []\n", 2, "duplicate key 'version'"),
        (Y + "  - [a]\n", 3, "rule 1: expected a mapping, got a list"),
        (Y + "  - expect: pass\n", 3, "rule 1: missing 'match'"),
        (Y + "  - match: a\n", 3, "rule 1: missing 'expect'"),
        (
            Y + "  - match: a\n    expect:\n  - match: b\n    expect: pass\n",
            4,
            "expect must be one of pass, fail, skip, got nothing",
        ),
        (Y + "  - match: a\n    expect: no\n", 4, "got 'no'"),
        (Y + "  - match: a\n    expect: PASS\n", 4, "got 'PASS'"),
        (Y + "  - match: a\n    expect: pass\n    match: b\n", 5, "duplicate key 'match'"),
        (Y + "  - match: a b\n    expect: pass\n", 3, "contains whitespace"),
        (Y + "  - match: []\n    expect: pass\n", 3, "match: empty list"),
        (Y + "  - match: [a, 3]\n    expect: pass\n", 3, "match: expected a string, got an integer"),
        (
            Y + "  - match: a\n    expect: pass\n    kernel: 6.12\n",
            5,
            "kernel: expected a string, got a number",
        ),
        (Y + "  - match: a\n    expect: pass\n    kernel: '6.12'\n", 5, "is not OP VERSION"),
        (Y + "  - match: a\n    expect: pass\n    kernel: '>=6.x'\n", 5, "bad kernel range"),
        (Y + "  - match: a\n    expect: pass\n    config: {CONFIG_X: yes}\n", 5, "YAML boolean"),
        (Y + "  - match: a\n    expect: pass\n    config: {GUP_TEST: y}\n", 5, "not a CONFIG_ option"),
        (Y + "  - match: a\n    expect: pass\n    config: {}\n", 5, "empty mapping"),
        (Y + "  - match: a\n    expect: pass\n    config: [CONFIG_X]\n", 5, "config: expected a mapping"),
        (Y + "  - match: a\n    expect: pass\n    config:\n      CONFIG_X: y\n      CONFIG_X: m\n", 7, "dup"),
        (Y + "  - match: a\n    expect: skip\n    reason: '   '\n", 3, "expect skip needs a 'reason'"),
        # a skip rule says on which kernels the case cannot run, why, and since which change
        (
            Y + "  - match: a\n    expect: skip\n    kernel: '<6.8'\n    reason: r\n",
            3,
            "expect skip needs a 'commit'",
        ),
        (
            Y + "  - match: a\n    expect: skip\n    reason: r\n    commit: c\n",
            3,
            "needs a 'kernel' or 'config'",
        ),
        (Y + "  - match: a\n    expect: fail\n    reason: [x]\n", 5, "reason: expected a string"),
        (Y + "  - match: a\n    expect: pass\n    commit: true\n", 5, "commit: expected a string"),
        # syntax errors point at the offending line
        (Y + "  - match: a\n   expect: pass\n", 4, "YAML syntax error"),
        (Y + "\t- match: a\n", 3, "YAML syntax error"),
        ("version: 1\n---\nversion: 1\n", 2, "YAML syntax error"),
        (Y + "  - match: a\n    expect: pass\n    reason: \x07\n", 5, "special characters"),
        ("version: 1\nrules: [\n  {match: a, expect: pass}\n", 2, "flow sequence"),
    ],
)
def test_invalid_text_reports_line(text: str, line: int, fragment: str) -> None:
    msg = error_of(text)
    assert msg.startswith(f"t.yaml:{line}: "), msg
    assert fragment in msg, msg


def test_unreadable_file_is_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read"):
        load(missing)


def test_non_utf8_reports_line(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes(b"version: 1\nrules:\n  - match: caf\xe9\n    expect: pass\n")
    with pytest.raises(ConfigError) as ei:
        load(f)
    assert str(ei.value).startswith(f"{f}:3: not UTF-8")


def test_config_error_is_an_input_error() -> None:
    with pytest.raises(InputError):
        parse("version: 3\nrules: []\n", "t.yaml")


# --- versions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("6.12.117", (6, 12, 117)),
        ("6.1.192-2", (6, 1, 192)),
        ("6.12.117+deb12-amd64", (6, 12, 117)),
        ("6.12.117-1~deb12u1", (6, 12, 117)),
        ("6.1.0-56-amd64", (6, 1, 0)),  # Debian ABI name: the resolver must pass 6.1.192 instead
        ("6.14-rc3", (6, 14, 0)),
        ("6.14.0-rc3+", (6, 14, 0)),
        ("v6.12", (6, 12, 0)),
        (" 5.10.0 ", (5, 10, 0)),
        ("4.19.0-27-cloud-amd64", (4, 19, 0)),
    ],
)
def test_parse_version(text: str, want: tuple[int, int, int]) -> None:
    assert parse_version(text).as_tuple() == want


@pytest.mark.parametrize("text", ["", "6", "6.x", "six.one", "6.12.117abc", "Linux 6.1", "6..1"])
def test_parse_version_rejects(text: str) -> None:
    with pytest.raises(InputError, match="cannot parse kernel version"):
        parse_version(text)


V = KernelVersion


@pytest.mark.parametrize(
    ("spec", "version", "inside"),
    [
        ("<6.2", V(6, 1, 999), True),
        ("<6.2", V(6, 2, 0), False),
        (">=6.2", V(6, 2, 0), True),
        (">=6.2", V(6, 1, 300), False),
        (">6.2", V(6, 2, 0), False),  # components not written are not compared: >6.2 is 6.3+
        (">6.2", V(6, 2, 99), False),
        (">6.2", V(6, 3, 0), True),
        ("<=6.12", V(6, 12, 117), True),
        ("<=6.12", V(6, 13, 0), False),
        ("==6.12", V(6, 12, 0), True),
        ("==6.12", V(6, 12, 117), True),
        ("==6.12", V(6, 13, 0), False),
        ("==6.12", V(6, 1, 12), False),
        ("==6.12.117", V(6, 12, 117), True),
        ("==6.12.117", V(6, 12, 118), False),
        ("<=6.12.117", V(6, 12, 117), True),
        ("<=6.12.117", V(6, 12, 118), False),
        (">6.12.117", V(6, 12, 118), True),
        ("==6", V(6, 19, 3), True),
        ("==6", V(7, 0, 0), False),
        ("<5.9", V(4, 19, 300), True),
        (">=6.2,<6.14", V(6, 2, 0), True),
        (">=6.2,<6.14", V(6, 13, 999), True),
        (">=6.2,<6.14", V(6, 14, 0), False),
        (">=6.2,<6.14", V(6, 1, 192), False),
        (" >= 6.2 , < 6.14 ", V(6, 12, 117), True),
        (">=5.9,>=6.1,<6.13,<=6.12", V(6, 12, 117), True),  # bounds combine as an intersection
        (">=5.9,>=6.1,<6.13,<=6.12", V(6, 0, 9), False),
        (">=6.14", parse_version("6.14-rc3"), True),  # an rc has its release's features
    ],
)
def test_version_in_range(spec: str, version: KernelVersion, inside: bool) -> None:
    assert version_in_range(version, spec) is inside


@pytest.mark.parametrize(
    "spec",
    [
        "",
        " ",
        "6.2",
        "=6.2",
        "=>6.2",
        ">=6.x",
        ">=6.2,",
        ",<6.2",
        ">=6.2.1.4",
        "!=6.2",
        ">=v6.2",
        "<6.2 <6.3",
    ],
)
def test_bad_range_spec(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_range(spec)


@pytest.mark.parametrize("spec", [">=6.14,<6.2", "==6.2,==6.3", "<0", ">6.12,<=6.12", ">=6.2,<6.2"])
def test_empty_range_is_rejected(spec: str) -> None:
    with pytest.raises(ConfigError, match="matches no version"):
        version_in_range(V(6, 12, 117), spec)


def test_tightest_adjacent_range_is_not_empty() -> None:
    assert parse_range(">=6.12,<=6.12").low == (6, 12, 0)
    assert version_in_range(V(6, 12, 5), ">6.12.4,<6.12.6")


# --- precedence -----------------------------------------------------------------------------

GENERAL_THEN_SPECIFIC = """\
  - match: "cow.vmsplice.*"
    expect: fail
    reason: general
  - match: "cow.vmsplice.unmap-in-child.base"
    expect: pass
    reason: specific
"""


def test_last_matching_rule_wins() -> None:
    rs = rules(GENERAL_THEN_SPECIFIC)
    exp = expectation_for(rs, "cow.vmsplice.unmap-in-child.base", kernel())
    assert exp == Expectation(expect=Expect.PASS, reason="specific", commit="", source="t.yaml:6")
    other = expectation_for(rs, "cow.vmsplice.unmap-in-child.thp", kernel())
    assert (other.expect, other.reason, other.source) == ("fail", "general", "t.yaml:3")
    assert [r.reason for r in matching_rules(rs, "cow.vmsplice.unmap-in-child.base", kernel())] == [
        "general",
        "specific",
    ]


def test_general_rule_after_specific_one_overrides_it() -> None:
    # The order matters: a general rule written last hides the specific one above it.
    rs = rules(
        """\
  - match: "cow.vmsplice.unmap-in-child.base"
    expect: pass
    reason: specific
  - match: "cow.vmsplice.*"
    expect: fail
    reason: general
"""
    )
    exp = expectation_for(rs, "cow.vmsplice.unmap-in-child.base", kernel())
    assert (exp.reason, exp.source) == ("general", "t.yaml:6")


def test_no_match_means_pass_with_empty_source() -> None:
    rs = rules(GENERAL_THEN_SPECIFIC)
    assert expectation_for(rs, "cow.fork.child-keeps-data.base", kernel()) == Expectation(
        expect=Expect.PASS, source=""
    )
    assert expectation_for(RuleSet(), "anything", kernel()) == Expectation(expect=Expect.PASS, source="")


def test_glob_matches_whole_id_case_sensitively() -> None:
    rs = rules('  - match: "cow.fork.*"\n    expect: fail\n    reason: r\n')
    assert expectation_for(rs, "cow.fork.child-keeps-data.base", kernel()).expect == "fail"
    assert expectation_for(rs, "x.cow.fork.a", kernel()).expect == "pass"
    assert expectation_for(rs, "COW.FORK.a", kernel()).expect == "pass"


def test_list_of_globs_matches_any() -> None:
    rs = rules('  - match: ["a.*", "b.?"]\n    expect: fail\n    reason: r\n')
    assert [expectation_for(rs, c, kernel()).expect for c in ("a.x", "b.y", "b.yy", "c.x")] == [
        "fail",
        "fail",
        "pass",
        "pass",
    ]


def test_kernel_range_restricts_rule() -> None:
    rs = rules('  - match: "x"\n    expect: fail\n    kernel: ">=5.9,<5.18"\n    reason: r\n')
    assert expectation_for(rs, "x", kernel("5.10.0-30-amd64")).expect == "fail"
    assert expectation_for(rs, "x", kernel("5.18.0")).expect == "pass"
    assert expectation_for(rs, "x", kernel("5.8.18")).expect == "pass"


# --- config conditions ----------------------------------------------------------------------


def config_rules() -> RuleSet:
    return rules(
        """\
  - match: "*"
    expect: skip
    config: {CONFIG_GUP_TEST: n}
    reason: no gup_test
    commit: "none: a debug option"
  - match: "*"
    expect: fail
    config: {CONFIG_GUP_TEST: y, CONFIG_HZ: 250, CONFIG_LOCALVERSION: "-test"}
    reason: all three
  - match: "*"
    expect: fail
    config: {CONFIG_IO_URING: m}
    reason: module
"""
    )


@pytest.mark.parametrize(
    ("config", "want"),
    [
        ({}, "no gup_test"),  # absent = unset = "n"
        ({"CONFIG_GUP_TEST": "n"}, "no gup_test"),
        ({"CONFIG_GUP_TEST": "m"}, ""),  # neither unset nor y
        ({"CONFIG_GUP_TEST": "y"}, ""),  # only one of the three conditions
        ({"CONFIG_GUP_TEST": "y", "CONFIG_HZ": "250", "CONFIG_LOCALVERSION": '"-test"'}, "all three"),
        ({"CONFIG_GUP_TEST": "y", "CONFIG_HZ": "1000", "CONFIG_LOCALVERSION": '"-test"'}, ""),
        ({"CONFIG_GUP_TEST": "y", "CONFIG_IO_URING": "y"}, ""),  # y is not m
        ({"CONFIG_GUP_TEST": "y", "CONFIG_IO_URING": "m"}, "module"),
    ],
)
def test_config_conditions(config: dict[str, str], want: str) -> None:
    assert expectation_for(config_rules(), "any.case", kernel(config=config)).reason == want


def test_good_file_combines_kernel_config_and_precedence() -> None:
    rs = load(DATA / "good.yaml")
    gup = {"CONFIG_GUP_TEST": "y", "CONFIG_HZ": "250"}
    assert expectation_for(rs, "cow.pin.ro.zeropage", kernel("6.1.192", gup)).expect == "fail"
    assert expectation_for(rs, "cow.pin.ro.zeropage", kernel("6.12.117", gup)).expect == "pass"
    assert expectation_for(rs, "cow.pin.ro.zeropage", kernel("6.1.192")).expect == "skip"
    assert expectation_for(rs, "cow.pin.ro-fast.memfd", kernel("6.12.117")).expect == "skip"
    hugetlb = "cow.vmsplice.unmap-in-child.hugetlb-2048kB"
    assert expectation_for(rs, hugetlb, kernel("6.1.192")).expect == "fail"
    assert expectation_for(rs, hugetlb, kernel("6.12.117")).expect == "pass"
    assert (
        expectation_for(rs, "cow.vmsplice.unmap-in-child.hugetlb-1048576kB", kernel("6.12.117")).expect
        == "fail"
    )


# --- judge ----------------------------------------------------------------------------------

JUDGE_TABLE = {
    #                 expect: pass          fail           skip
    Outcome.OK: (Verdict.PASS, Verdict.XPASS, Verdict.PASS),
    Outcome.NOT_OK: (Verdict.FAIL, Verdict.XFAIL, Verdict.FAIL),
    # no silent SKIP: a skip is as expected only where an `expect: skip` rule says why
    Outcome.SKIP: (Verdict.ERROR, Verdict.ERROR, Verdict.SKIP),
    Outcome.XFAIL: (Verdict.XFAIL, Verdict.XFAIL, Verdict.XFAIL),
    Outcome.TODO: (Verdict.ERROR, Verdict.ERROR, Verdict.SKIP),
    Outcome.ERROR: (Verdict.ERROR, Verdict.ERROR, Verdict.ERROR),
}


@pytest.mark.parametrize(
    ("outcome", "expect", "verdict"),
    [
        (o, e, v)
        for o, row in JUDGE_TABLE.items()
        for e, v in zip(("pass", "fail", "skip"), row, strict=False)
    ],
)
def test_judge_table(outcome: Outcome, expect: str, verdict: Verdict) -> None:
    assert judge(outcome, Expectation(expect=Expect(expect), reason="r")) is verdict


def test_judge_table_covers_every_outcome() -> None:
    assert set(JUDGE_TABLE) == set(Outcome)


def test_judge_rejects_unknown_expectation() -> None:
    with pytest.raises(InputError, match="bad expectation"):
        judge(Outcome.OK, Expectation(expect="flaky", source="x.yaml:3"))  # type: ignore[arg-type]


@pytest.mark.parametrize("expect", ["pass", "fail"])
def test_unexpected_skip_is_error_and_says_no_expectation_explains_it(expect: str) -> None:
    verdict, reason = judge_case(Outcome.SKIP, Expectation(expect=Expect(expect), reason="r"), "no swap")
    assert verdict is Verdict.ERROR and verdict.unexpected
    assert reason == "skipped, and no expectation says why: no swap"


def test_expected_skip_keeps_the_tests_reason() -> None:
    exp = Expectation(expect=Expect.SKIP, reason="mTHP came in 6.8", commit="3485b88390b0", source="e.yaml:3")
    assert judge_case(Outcome.SKIP, exp, "no mTHP sysfs") == (Verdict.SKIP, "no mTHP sysfs")
    assert not Verdict.SKIP.unexpected


def test_unexpected_todo_and_a_skip_without_reason() -> None:
    assert judge_case(Outcome.TODO, Expectation(Expect.PASS), "later") == (
        Verdict.ERROR,
        "TODO: skipped, and no expectation says why: later",
    )
    assert judge_case(Outcome.SKIP, Expectation(Expect.PASS), "") == (
        Verdict.ERROR,
        "skipped, and no expectation says why: the test gave no reason",
    )


@pytest.mark.parametrize("outcome", [o for o in Outcome if o not in (Outcome.SKIP, Outcome.TODO)])
@pytest.mark.parametrize("expect", ["pass", "fail", "skip"])
def test_judge_case_keeps_the_reason_of_anything_but_a_skip(outcome: Outcome, expect: str) -> None:
    exp = Expectation(expect=Expect(expect), reason="r")
    assert judge_case(outcome, exp, "why") == (judge(outcome, exp), "why")


def test_a_skip_rule_that_does_not_apply_leaves_the_skip_unexpected() -> None:
    rs = rules(
        '  - match: "cow.*.mthp-*"\n    expect: skip\n    kernel: "<6.8"\n'
        '    reason: no mTHP\n    commit: "3485b88390b0 (6.8)"\n'
    )
    assert judge(Outcome.SKIP, expectation_for(rs, "cow.fork.x.mthp-64k", kernel("6.1.192"))) is Verdict.SKIP
    assert (
        judge(Outcome.SKIP, expectation_for(rs, "cow.fork.x.mthp-64k", kernel("6.12.117"))) is Verdict.ERROR
    )
    assert judge(Outcome.SKIP, expectation_for(rs, "cow.fork.x.base", kernel("6.1.192"))) is Verdict.ERROR


# --- the repository's own file ----------------------------------------------------------------


def test_repo_expectations_load() -> None:
    rs = load(REPO_FILE)
    for r in rs.rules:
        assert r.source.startswith(f"{REPO_FILE}:")
        if r.expect != "pass":
            assert r.reason and r.commit, r.source


# What the Debian kernels' configs have and the skip rules look at.
SOFT_DIRTY = {"CONFIG_MEM_SOFT_DIRTY": "y"}


@pytest.mark.parametrize("release", ["6.1.192", "6.12.117"])
def test_repo_expects_first_cases_to_pass_on_debian_kernels(release: str) -> None:
    rs = load(REPO_FILE)
    for case in FIRST_CASES:
        assert expectation_for(rs, case, kernel(release, SOFT_DIRTY)) == Expectation(
            expect=Expect.PASS, source=""
        ), case


@pytest.mark.parametrize(
    ("case", "release", "want"),
    [
        ("cow.vmsplice.unmap-in-child.base", "5.4.0", "fail"),
        ("cow.vmsplice.unmap-in-child.base", "5.10.0", "pass"),
        ("cow.vmsplice-after-fork.unmap-in-parent.thp-pte", "5.4.0", "fail"),
        ("cow.vmsplice-before-fork.unmap-in-parent.base", "5.8.3", "fail"),
        ("cow.vmsplice-before-fork.unmap-in-parent.base", "5.9.0", "pass"),
        ("cow.vmsplice.unmap-in-child.thp", "5.10.0", "fail"),
        ("cow.vmsplice-mprotect.unmap-in-child.base-swapped", "5.15.0", "fail"),
        ("cow.vmsplice-after-fork.unmap-in-parent.thp-pte-swapped", "5.17.0", "fail"),
        ("cow.vmsplice.unmap-in-child.thp-pte", "5.10.0", "pass"),
        ("cow.vmsplice.unmap-in-child.base-swapped", "5.18.0", "pass"),
        ("cow.iouring.mprotect-ro-rw.base", "5.10.0", "fail"),
        ("cow.iouring.mprotect-ro-rw.thp-pte", "5.10.0", "fail"),
        ("cow.iouring.mprotect-ro-rw.thp", "5.10.0", "pass"),
        ("cow.iouring.mprotect-ro-rw.thp", "5.18.2", "fail"),
        ("cow.iouring.mprotect-ro-rw.base", "5.4.0", "pass"),
        ("cow.unshare.process-vm-readv.base", "5.4.0", "fail"),
        ("cow.unshare.process-vm-readv.thp", "5.8.3", "pass"),
        ("cow.unshare.process-vm-readv.thp", "5.15.0", "fail"),
        ("cow.unshare.process-vm-readv.base", "5.19.0", "pass"),
        ("cow.unshare.odirect-write.base", "6.4.9", "fail"),
        ("cow.unshare.odirect-write.base", "6.5.0", "pass"),
    ],
)
def test_repo_rules_describe_old_kernels(case: str, release: str, want: str) -> None:
    assert expectation_for(load(REPO_FILE), case, kernel(release, SOFT_DIRTY)).expect == want


GUP = {"CONFIG_GUP_TEST": "y"}


@pytest.mark.parametrize(
    ("case", "release", "config", "want"),
    [
        # no gup_test: Debian 12's kernels pin through harness_pin (held to pass, the
        # ro-longterm-private cases fail before 6.2); Debian 13's (gcc-14) cannot have the module on a gcc-12 host: skip
        ("cow.gup-pin-ro.cow-shared.base", "6.12.117", {}, "pass"),
        ("cow.gup-benchmark.longterm-rw-pin.tmpfs-shared", "6.1.192", {}, "pass"),
        ("cow.gup-pin-ro.private-mapping.zeropage", "6.1.192", {}, "fail"),
        ("cow.gup-fast-longterm.rw-pin.ext4-shared", "6.1.192", {}, "fail"),
        ("cow.gup-pin-ro.cow-shared.base", "7.3.4", {}, "skip"),
        ("cow.gup-pin-ro.cow-shared.base", "6.12.117", GUP, "pass"),
        ("cow.gup-fast-longterm.rw-pin.ext4-shared", "6.12.117", GUP, "pass"),
        # 6.1 with gup_test: no PIN_LONGTERM_TEST (6.2), but PIN_LONGTERM_BENCHMARK runs
        ("cow.gup-pin-ro.private-mapping.zeropage", "6.1.192", GUP, "skip"),
        ("cow.gup-fast-longterm.rw-pin.ext4-shared", "6.1.192", GUP, "skip"),
        ("cow.gup-benchmark.longterm-rw-pin.ext4-shared", "6.1.192", GUP, "fail"),
        ("cow.gup-fast-longterm.rw-pin.ext4-shared", "6.2.0", GUP, "fail"),
        # anonymous mTHP came in 6.8
        ("cow.fork.child-keeps-data.mthp-64k", "6.1.192", {}, "skip"),
        ("cow.fork.child-keeps-data.mthp-64k", "6.7.12", {}, "skip"),
        ("cow.fork.child-keeps-data.mthp-64k", "6.8.0", {}, "pass"),
        ("cow.fork.child-keeps-data.mthp-64k", "6.12.117", {}, "pass"),
        ("cow.iouring.write-private-mapping.ext4-private", "6.1.192", {}, "skip"),
        ("cow.iouring.write-private-mapping.ext4-private", "6.12.117", {}, "pass"),
        # no rule hides an environment gap: 1 GiB hugetlb pages are the guest's to provide
        ("cow.fork.child-keeps-data.hugetlb-1g", "6.1.192", {}, "pass"),
        ("cow.fork.child-keeps-data.hugetlb-1g", "6.12.117", GUP, "pass"),
        ("cow.vmsplice.unmap-in-child.hugetlb-1g", "6.12.117", {}, "fail"),
        # the write after mprotect(RW) faults only with soft-dirty tracking
        ("cow.iouring.mprotect-ro-rw.thp", "6.12.117", {}, "skip"),
        ("cow.iouring.mprotect-ro-rw.thp", "6.12.117", SOFT_DIRTY, "pass"),
        ("cow.gup-pin-ro.exclusive.base", "6.12.117", {**GUP}, "skip"),
        ("cow.gup-pin-ro.exclusive.base", "6.12.117", {**GUP, **SOFT_DIRTY}, "pass"),
        ("cow.gup-pin-ro.cow-shared.base", "6.12.117", {**GUP}, "pass"),
    ],
)
def test_repo_skip_rules(case: str, release: str, config: dict[str, str], want: str) -> None:
    assert expectation_for(load(REPO_FILE), case, kernel(release, config)).expect == want


def test_repo_skip_rules_say_where_why_and_since_when() -> None:
    skips = [r for r in load(REPO_FILE).rules if r.expect == "skip"]
    assert skips
    for r in skips:
        assert (r.kernel is not None or r.config) and r.reason and r.commit, r.source
        assert not any("hugetlb" in g for g in r.match), r.source
