"""harness.terminal: what `harness run` shows at its end - the unexpected cases in full, the
expected SKIPs and XFAILs grouped by reason with a count and an id pattern, the counts."""

from __future__ import annotations

from harness.model import CaseResult, Expect, Expectation, Outcome, Verdict
from harness.report import junit as report
from harness.report import resultset, terminal
from harness.run import matrix
from tests.helpers.results_data import RUN_61

NO_GUP = Expectation(
    Expect.SKIP,
    "needs the gup_test debugfs interface: the kernel has no CONFIG_GUP_TEST",
    "none: CONFIG_GUP_TEST",
    "expectations.yaml:236",
)
NO_MTHP = Expectation(
    Expect.SKIP, "no anonymous multi-size THP before 6.8", "3485b88390b0", "expectations.yaml:225"
)
HUGETLB_GAP = Expectation(Expect.FAIL, "hugetlb COW reuse decided by mapcount", "", "expectations.yaml:90")
MEMORIES = ("base", "base-swapped", "thp", "thp-swapped")
SIZES = ("mthp-16k", "mthp-32k", "mthp-64k", "mthp-1024k")


PASS_EXPECTED = Expectation(Expect.PASS)


def res(
    case_id: str,
    verdict: Verdict,
    reason: str = "",
    output: str = "",
    exp: Expectation = PASS_EXPECTED,
    events: tuple[str, ...] = (),
) -> CaseResult:
    outcome = {Verdict.SKIP: Outcome.SKIP, Verdict.PASS: Outcome.OK, Verdict.XPASS: Outcome.OK}.get(
        verdict, Outcome.NOT_OK
    )
    return CaseResult(case_id, case_id.split(".")[1], outcome, verdict, reason, output, exp, 0.1, events)


def default_run() -> list[CaseResult]:
    """A 6.1-like run: every gup case skips on gup_test, the other mTHP cases on mTHP, two
    hugetlb XFAILs, one FAIL, the rest PASS."""
    out = [
        res(f"cow.gup-{how}.{what}.{m}", Verdict.SKIP, "/sys/kernel/debug/gup_test: ENOENT", exp=NO_GUP)
        for how, what in (("pin-ro", "cow-shared"), ("fast-pin-ro", "cow-shared"), ("longterm", "ro-pin"))
        for m in MEMORIES + SIZES
    ]
    out += [
        res(f"cow.{prog}.{name}.{s}", Verdict.SKIP, f"no hugepages-{s[5:-1]}kB", exp=NO_MTHP)
        for prog, name in (
            ("fork", "child-keeps-data"),
            ("fork-mprotect", "child-keeps-data"),
            ("vmsplice", "unmap-in-child"),
        )
        for s in SIZES
    ]
    out += [
        res(f"cow.{prog}.child-keeps-data.{m}", Verdict.PASS)
        for prog in ("fork", "vmsplice")
        for m in MEMORIES
    ]
    out += [
        res(
            "cow.fork.child-keeps-data.hugetlb-2m",
            Verdict.XFAIL,
            "Leak from child into parent",
            exp=HUGETLB_GAP,
        ),
        res("cow.vmsplice.unmap-in-child.hugetlb-2m", Verdict.XFAIL, "Leak", exp=HUGETLB_GAP),
        res(
            "cow.fork.parent-keeps-data.thp",
            Verdict.FAIL,
            "Leak from parent into child",
            "\n".join(f"line {n}" for n in range(1, 9)),
        ),
    ]
    return out


# ---- grouping -------------------------------------------------------------------------------


def test_skips_and_xfails_group_by_the_rules_reason() -> None:
    groups = terminal.group_expected([("", r) for r in default_run()])
    assert [(g.verdict, g.count, g.reason, g.pattern) for g in groups] == [
        (Verdict.SKIP, 24, NO_GUP.reason, "cow.gup-*"),
        (Verdict.SKIP, 12, NO_MTHP.reason, "some of cow.*.mthp-*"),  # the gup mTHP cases are the gup group's
        (
            Verdict.XFAIL,
            2,
            HUGETLB_GAP.reason,
            "cow.fork.child-keeps-data.hugetlb-2m, cow.vmsplice.unmap-in-child.hugetlb-2m",
        ),
    ]
    assert groups[0].per_kernel == (("", 24),) and len(groups[0].ids) == 24


def test_without_a_rule_reason_the_tests_own_reason_groups() -> None:
    cases = [res(f"cow.fork.x.{m}", Verdict.SKIP, "no swap") for m in MEMORIES]
    cases += [
        res("cow.fork.y.base", Verdict.SKIP, "no  swap\n"),  # same words, other spacing
        res("cow.fork.z.base", Verdict.SKIP, "no ext4 disk"),
        # a rule that expects failure says nothing about why this case skipped
        res("cow.fork.z.hugetlb-1g", Verdict.SKIP, "no free 1 GiB pages", exp=HUGETLB_GAP),
    ]
    groups = terminal.group_expected([("", r) for r in cases])
    assert [(g.reason, g.count) for g in groups] == [
        ("no swap", 5),
        ("no ext4 disk", 1),
        ("no free 1 GiB pages", 1),
    ]


def test_a_matrix_counts_each_kernel() -> None:
    cases = [(k, r) for k in ("debian:6.1", "debian:6.12") for r in default_run()]
    cases += [
        (
            "debian:6.1",
            res(
                "cow.fork.z.base",
                Verdict.SKIP,
                "io_uring refuses",
                exp=Expectation(Expect.SKIP, "refused before 6.5"),
            ),
        )
    ]
    groups = terminal.group_expected(cases)
    assert groups[0].count == 48 and groups[0].per_kernel == (("debian:6.1", 24), ("debian:6.12", 24))
    assert groups[0].pattern == "cow.gup-*"  # ids, not (kernel, id) pairs
    only = next(g for g in groups if g.reason == "refused before 6.5")
    assert only.per_kernel == (("debian:6.1", 1),)
    text = terminal.group_lines(groups, by_kernel=True)
    assert text[0] == f"48 SKIP   {NO_GUP.reason}  (cow.gup-*)"
    assert text[1].split() == ["on", "debian:6.1", "24,", "debian:6.12", "24"]


def test_id_patterns() -> None:
    assert terminal.id_pattern(["a.b.c"]) == "a.b.c"
    assert terminal.id_pattern(["a.b.c", "a.b.c", "a.b.d"]) == "a.b.c, a.b.d"
    mthp = [f"cow.fork.x.mthp-{k}k" for k in (16, 32, 64, 1024)]
    assert terminal.id_pattern(mthp) == "cow.fork.x.mthp-*"  # cut at "-", not "mthp-*4k"
    # ids of different depths: first and last components
    mixed = [
        "cow.fork.x.hugetlb-2m",
        "cow.iouring-register-ok.hugetlb-2m",
        "cow.vmsplice.y.hugetlb-1g",
        "cow.gup-pin-ro.y.hugetlb-2m",
    ]
    assert terminal.id_pattern(mixed) == "cow.*.hugetlb-*"
    assert (
        terminal.id_pattern(mixed, ["cow.fork.x.hugetlb-2m", "cow.fork.x.hugetlb-1g"])
        == "some of cow.*.hugetlb-*"
    )
    assert terminal.id_pattern(["x", "y.z", "w.q", "r.s.t"]) == "*"


# ---- rendering ------------------------------------------------------------------------------


def test_normal_shows_unexpected_then_groups_then_counts() -> None:
    text = terminal.run_summary(default_run())
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["FAIL", "cow.fork.parent-keeps-data.thp"]
    assert "Leak from parent into child" in lines[0]
    assert lines[1:7] == [f"       | line {n}" for n in range(1, 6)] + [
        "       | … 3 more lines (junit.xml, report.html)"
    ]
    assert lines[7] == ""
    assert lines[8] == f"24 SKIP   {NO_GUP.reason}  (cow.gup-*)"
    assert lines[-2:] == [
        "verdicts: PASS=8  FAIL=1  SKIP=36  XFAIL=2  XPASS=0  ERROR=0",
        "harness: 8 passed, 1 failed, 36 skipped, 2 xfail, 0 xpass, 0 error",
    ]
    assert len(lines) == 14 and "PASS " not in text


def test_quiet_and_verbose() -> None:
    quiet = terminal.run_summary(default_run(), "quiet").splitlines()
    assert quiet[0].startswith("FAIL ") and "SKIP" not in "\n".join(quiet[:-1])
    assert quiet[-2:] == ["", "harness: 8 passed, 1 failed, 36 skipped, 2 xfail, 0 xpass, 0 error"]
    assert terminal.run_summary(default_run(), "verbose") == report.summary_table(default_run())
    clean = [r for r in default_run() if r.verdict is not Verdict.FAIL]
    assert (
        terminal.run_summary(clean, "quiet")
        == "harness: 8 passed, 0 failed, 36 skipped, 2 xfail, 0 xpass, 0 error\n"
    )


def test_unexpected_cases_say_what_was_expected_and_what_the_kernel_reported() -> None:
    xpass = res("cow.fork.z.hugetlb-2m", Verdict.XPASS, exp=HUGETLB_GAP)
    err = res(
        "cow.fork.z.thp",
        Verdict.ERROR,
        "skipped, and no expectation says why: no swap",
        events=("WARNING: CPU: 0 PID: 1 at mm/gup.c:123",),
    )
    lines = terminal.run_summary([xpass, err]).splitlines()
    assert lines[0] == f"XPASS  cow.fork.z.hugetlb-2m  (expected fail: {HUGETLB_GAP.reason})"
    assert lines[1] == "ERROR  cow.fork.z.thp  skipped, and no expectation says why: no swap"
    assert lines[2] == "       kernel: WARNING: CPU: 0 PID: 1 at mm/gup.c:123"


def test_guest_text_cannot_drive_the_terminal() -> None:
    raw = b"\x1b[2J\x07\xff\xc2\x9b".decode("utf-8", errors="surrogateescape")
    cases = [
        res("cow.a\x1b[31m.b", Verdict.FAIL, f"bad {raw}\nsecond", f"\tout {raw}\x9b1m\r\nnext\x00"),
        res("cow.a.c", Verdict.SKIP, f"why {raw}"),
        res("cow.a.d", Verdict.XFAIL, f"{raw}", exp=HUGETLB_GAP),
    ]
    for detail in terminal.DETAILS:
        text = terminal.run_summary(cases, detail)
        assert not any(
            ord(ch) < 0x20 and ch != "\n" or 0x7F <= ord(ch) <= 0x9F or 0xD800 <= ord(ch) <= 0xDFFF
            for ch in text
        ), (detail, text)
        text.encode("utf-8")  # printable: no lone surrogates
    text = terminal.run_summary(cases)
    assert "bad \\x1b[2J\\x07\\xff\\x9b second" in text
    assert "       |         out \\x1b[2J\\x07\\xff\\x9b\\x9b1m" in text  # indentation kept, tab expanded


def test_a_recorded_run() -> None:
    results = [matrix.case_result(c) for c in resultset.load(RUN_61).cases]
    lines = terminal.run_summary(results).splitlines()
    assert len(lines) == len(terminal.group_expected([("", r) for r in results])) + 3
    assert (
        "2 XFAIL  O_DIRECT write uses FOLL_GET, not FOLL_PIN: the COW-shared source page is not unshared  "
        "(cow.unshare.odirect-write.base, cow.unshare.odirect-write.thp)" in lines
    )
