"""harness.suites.kselftest (keying upstream TAP on `# [RUN]` lines, selection, Program variant) and
harness.suites.crosscheck / upstream_map, on the recorded upstream runs in tests/data/ktap/."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InputError
from harness.judge import expect, ktap
from harness.model import CaseResult, Expect, Expectation, Kernel, KernelVersion, Outcome, Verdict
from harness.suites import crosscheck, kselftest, upstream_map
from harness.suites import registry as suites
from harness.suites.registry import ProgramKind
from tests.helpers.paths import DATA

KTAP = DATA / "ktap"
KERNEL = Kernel("test", Path("/nonexistent"), "6.12.117", KernelVersion(6, 12, 117), None)


def load(name: str) -> str:
    return (KTAP / name).read_bytes().decode("utf-8", errors="surrogateescape")


def docs(name: str) -> list[str]:
    return ktap.split_documents(load(name))


def rules() -> expect.RuleSet:
    p = DATA / "expect" / "good.yaml"
    return expect.load(p)


@pytest.mark.parametrize(
    "name,test,n",
    [
        ("debian-6.12.117-cloud-static-init-probe-gup_longterm-cow.log", "gup_longterm", 50),
        ("debian-6.12.117-cloud-static-init-probe-gup_longterm-cow.log", "cow", 778),
        ("debian-6.1.192-cloud-static-init-probe-gup_longterm-cow.log", "gup_longterm", 50),
        ("debian-6.1.192-cloud-static-init-probe-gup_longterm-cow.log", "cow", 190),
        ("host-6.18-upstream-cow.tap", "cow", 778),
        ("host-6.18-upstream-gup_longterm.tap", "gup_longterm", 50),
    ],
)
def test_recorded_runs_key_to_unique_ids_from_run_lines(name: str, test: str, n: int) -> None:
    ds = docs(name)
    doc = ds[0] if len(ds) == 1 else ds[0 if test == "gup_longterm" else 1]
    got = kselftest.keyed(ktap.parse(doc), f"kselftest.mm.{test}")
    ids = [i for i, _ in got]
    assert len(ids) == n == len(set(ids))
    assert all(i.startswith(f"kselftest.mm.{test}.") for i in ids)
    assert not any(i.rsplit(".", 1)[1].startswith("result-") for i in ids)  # every one had a RUN line


def test_ids_are_the_run_text_slugged() -> None:
    cow = ktap.parse(docs("debian-6.12.117-cloud-static-init-probe-gup_longterm-cow.log")[1])
    got = dict(kselftest.keyed(cow, "kselftest.mm.cow"))
    node = got["kselftest.mm.cow.basic-cow-after-fork-with-base-page"]
    assert node.outcome is Outcome.OK and node.name == "No leak from parent into child"
    swapped = got["kselftest.mm.cow.basic-cow-after-fork-with-swapped-out-base-page"]
    assert swapped.outcome is Outcome.OK
    xf = got["kselftest.mm.cow.vmsplice-unmap-in-child-with-hugetlb-2048-kb"]
    assert xf.outcome is Outcome.XFAIL
    gl = ktap.parse(docs("debian-6.12.117-cloud-static-init-probe-gup_longterm-cow.log")[0])
    first = kselftest.keyed(gl, "kselftest.mm.gup_longterm")[0]
    assert first[0] == "kselftest.mm.gup_longterm.r-w-longterm-gup-pin-in-map-shared-file-mapping-with-memfd"
    assert first[1].outcome is Outcome.SKIP and first[1].reason == "gup_test not available"


def test_repeated_run_lines_and_missing_ones_stay_unique_and_stable() -> None:
    tap = (
        "TAP version 13\n1..5\n# [RUN] same thing\nok 1 fine\n# [RUN] same thing\nok 2 fine\n"
        "ok 3 named result\nok 4\n# [RUN] crashed here\n"
    )
    got = [i for i, _ in kselftest.keyed(ktap.parse(tap), "p")]
    assert got == ["p.same-thing", "p.same-thing-2", "p.named-result", "p.result-4", "p.crashed-here"]


def test_cut_off_run_keys_the_missing_result_on_its_run_line() -> None:
    tap = "TAP version 13\n1..3\n# [RUN] first\nok 1 a\n# [RUN] second\n"
    got = kselftest.keyed(ktap.parse(tap), "p")
    assert [(i, n.outcome) for i, n in got] == [
        ("p.first", Outcome.OK),
        ("p.second", Outcome.ERROR),
        ("p.result-3", Outcome.ERROR),
    ]


def test_spec_parsing() -> None:
    assert kselftest.parse_spec("kselftest:mm/cow") == ("mm", "cow")
    assert kselftest.parse_spec("kselftest:net/forwarding/ipip") == ("net/forwarding", "ipip")
    assert kselftest.id_prefix("mm", "gup_longterm") == "kselftest.mm.gup_longterm"
    assert kselftest.program_name("mm", "cow") == "kselftest-mm-cow"
    for bad in ("kselftest:cow", "kselftest:../mm/cow", "kselftest:mm/", "kselftest:mm/c w"):
        with pytest.raises(InputError):
            kselftest.parse_spec(bad)


@pytest.mark.parametrize(
    "filters,selected",
    [
        ([], True),
        (["kselftest.mm.cow.*"], True),
        (["kselftest.*"], True),
        (["*hugetlb*"], True),
        (["kselftest.mm.cow.basic-cow-after-fork-with-base-page"], True),
        (["cow.fork.*"], False),
        (["kselftest.mm.gup_longterm.*"], False),
        (["cow.*", "kselftest.mm.c*"], True),
    ],
)
def test_whole_program_selection_by_prefix(filters: list[str], selected: bool) -> None:
    assert kselftest.could_match("kselftest.mm.cow", filters) is selected


def _program() -> suites.Program:
    return suites.Program(
        "kselftest-mm-cow",
        "kselftest:mm/cow",
        Path("/x/cow"),
        "kselftest/mm/cow",
        kind=ProgramKind.KSELFTEST,
        id_prefix="kselftest.mm.cow",
        guest_cwd="/mnt/ext4",
    )


def test_program_variant_runs_whole_from_its_cwd_and_lists_its_prefix() -> None:
    p = _program()
    assert p.guest_argv(["ignored"]) == [
        "/bin/sh",
        "-c",
        'cd "$1" && shift && exec "$@"',
        "sh",
        "/mnt/ext4",
        "/harness/kselftest/mm/cow",
    ]
    assert suites.list_ids(p) == ["kselftest.mm.cow"]
    (sel,) = suites.select([p], ["*base-page"])
    assert sel.ids == ("kselftest.mm.cow",) and sel.filters == ("*base-page",)
    with pytest.raises(InputError):
        suites.select([p], ["cow.fork.*"])


def test_case_results_filter_after_the_run_and_judge() -> None:
    root = ktap.parse(docs("debian-6.12.117-cloud-static-init-probe-gup_longterm-cow.log")[1])
    res = kselftest.case_results(
        "kselftest-mm-cow", "kselftest.mm.cow", ("*with-base-page",), root, rules(), KERNEL
    )
    assert len(res) == 14  # the anon tests on a base page, with liburing
    byid = {r.id: r for r in res}
    r = byid["kselftest.mm.cow.basic-cow-after-fork-with-base-page"]
    assert (r.verdict, r.program) == (Verdict.PASS, "kselftest-mm-cow")
    assert "# [RUN] Basic COW after fork() ... with base page" in r.output
    assert r.output.endswith("ok 1 No leak from parent into child")
    skipped = byid["kselftest.mm.cow.r-o-gup-pin-on-r-o-mapped-shared-page-with-base-page"]
    # good.yaml has no skip rule for the kselftest's ids: its gup_test skips are unexpected
    assert skipped.verdict is Verdict.ERROR
    assert skipped.reason == "skipped, and no expectation says why: gup_test not available"


def test_case_results_never_empty() -> None:
    crashed = kselftest.case_results(
        "p", "kselftest.mm.cow", (), ktap.parse(""), rules(), KERNEL, "program exited 139: Segmentation fault"
    )
    assert [(r.id, r.verdict, r.reason) for r in crashed] == [
        ("kselftest.mm.cow", Verdict.ERROR, "program exited 139: Segmentation fault")
    ]
    skip_all = kselftest.case_results(
        "p", "kselftest.mm.x", (), ktap.parse("TAP version 13\n1..0 # SKIP no swap\n"), rules(), KERNEL
    )
    assert [(r.id, r.outcome, r.verdict, r.reason) for r in skip_all] == [
        ("kselftest.mm.x", Outcome.SKIP, Verdict.ERROR, "skipped, and no expectation says why: no swap")
    ]
    none = kselftest.case_results(
        "p", "kselftest.mm.x", ("nope",), ktap.parse("TAP version 13\n1..1\nok 1 a\n"), rules(), KERNEL
    )
    assert none[0].verdict is Verdict.ERROR and "no result matched --filter" in none[0].reason


def test_a_kselftest_skipped_whole_is_expected_where_a_rule_says_why() -> None:
    rs = expect.parse(
        'version: 1\nrules:\n  - match: "kselftest.mm.x"\n    expect: skip\n'
        '    config: {CONFIG_SWAP: n}\n    reason: no swap\n    commit: "none: CONFIG_SWAP"\n',
        "e.yaml",
    )
    skip_all = kselftest.case_results(
        "p", "kselftest.mm.x", (), ktap.parse("TAP version 13\n1..0 # SKIP no swap\n"), rs, KERNEL
    )
    assert [(r.verdict, r.reason, r.expectation.source) for r in skip_all] == [
        (Verdict.SKIP, "no swap", "e.yaml:3")
    ]


def test_not_run_counts_a_kselftest_as_run_when_it_reported_anything() -> None:
    from harness.judge import outcomes

    sel = suites.Selected(_program(), ("kselftest.mm.cow",))
    assert outcomes.not_run(sel, {"kselftest.mm.cow.basic"}, "why", rules(), KERNEL) == []
    (r,) = outcomes.not_run(sel, set(), "not run: boom", rules(), KERNEL)
    assert (r.id, r.verdict) == ("kselftest.mm.cow", Verdict.ERROR)


# ---- the mapping and the cross-check ------------------------------------------------------


def _golden_ids() -> set[str]:
    out: set[str] = set()
    for f in (DATA / "golden" / "case_ids").glob("cow_*.txt"):
        out.update(f.read_text().split())
    return out


def _recorded_upstream_ids() -> set[str]:
    ids: set[str] = set()
    for name in ("debian-6.12.117-cloud-static-init-probe-gup_longterm-cow.log",):
        gl, cow = docs(name)
        ids.update(i for i, _ in kselftest.keyed(ktap.parse(gl), "kselftest.mm.gup_longterm"))
        ids.update(i for i, _ in kselftest.keyed(ktap.parse(cow), "kselftest.mm.cow"))
    return ids


def test_every_mapped_pair_names_real_cases_on_both_sides() -> None:
    ours, upstream = _golden_ids(), _recorded_upstream_ids()
    pairs = upstream_map.pairs()
    assert len(pairs) > 250
    assert [o for _, _, o in pairs if o not in ours] == []
    assert [(t, x) for t, x, _ in pairs if crosscheck.upstream_id(t, x) not in upstream] == []
    assert len({o for _, _, o in pairs}) == len(pairs)  # one upstream case per one of ours


def test_mapping_examples() -> None:
    m = {(t, x): o for t, x, o in upstream_map.pairs()}
    assert m[("cow", "Basic COW after fork() ... with base page")] == "cow.fork.child-keeps-data.base"
    assert (
        m[("cow", "R/O GUP-fast pin on R/O-mapped previously-shared page ... with PTE-mapped THP (16 kB)")]
        == "cow.gup-fast-pin-ro.was-shared.mthp-16k"
    )
    assert (
        m[("cow", "R/O longterm GUP pin ... with shared zeropage")]
        == "cow.gup-pin-ro.private-mapping.zeropage"
    )
    assert (
        m[("gup_longterm", "R/W longterm GUP pin in MAP_SHARED file mapping ... with local tmpfile")]
        == "cow.gup-longterm.rw-pin.ext4-shared"
    )
    # upstream judges this one on a stale errno: left out
    assert (
        "gup_longterm",
        "io_uring fixed buffer with MAP_SHARED file mapping ... with local tmpfile",
    ) not in m
    assert (
        m[("gup_longterm", "io_uring fixed buffer with MAP_SHARED file mapping ... with memfd")]
        == "cow.iouring-register-ok.memfd-shared"
    )
    # upstream's partially mremap()'ed THP is the half left in place
    assert (
        m[("cow", "vmsplice() + unmap in child ... with partially mremap()'ed THP (2048 kB)")]
        == "cow.vmsplice.unmap-in-child.thp-mremap-kept"
    )
    # the swapped-out single PTE, the mTHP forms per size, the 1 GiB hugetlb memfd
    assert m[("cow", "Basic COW after fork() ... with single PTE of swapped-out THP (2048 kB)")] == (
        "cow.fork.child-keeps-data.thp-single-pte-swapped"
    )
    assert m[("cow", "fork() with an iouring fixed buffer ... with partially mremap()'ed THP (64 kB)")] == (
        "cow.iouring.fork-while-registered.mthp-64k-mremap-kept"
    )
    assert m[("cow", "vmsplice() + unmap in child ... with single PTE of swapped-out THP (16 kB)")] == (
        "cow.vmsplice.unmap-in-child.mthp-16k-single-pte-swapped"
    )
    assert m[("cow", "Basic COW ... with memfd hugetlb (1048576 kB)")] == (
        "cow.private-write.other-mapping-unchanged.hugetlb-memfd-1g-private"
    )
    assert m[
        (
            "gup_longterm",
            "R/O longterm GUP pin in MAP_SHARED file mapping ... with memfd hugetlb (1048576 kB)",
        )
    ] == ("cow.gup-longterm.ro-pin.hugetlb-memfd-1g-shared")


def test_filesystem_pairings_are_refused_unless_the_guest_shows_the_filesystem() -> None:
    up_tmp = crosscheck.upstream_id("cow", "Basic COW ... with tmpfile")
    up_local = crosscheck.upstream_id(
        "gup_longterm", "R/O longterm GUP pin in MAP_SHARED file mapping ... with local tmpfile"
    )
    up_memfd = crosscheck.upstream_id("cow", "Basic COW ... with memfd")
    results = [
        _r("cow.private-write.other-mapping-unchanged.tmpfs-private", Outcome.OK, Verdict.PASS),
        _r(up_tmp, Outcome.NOT_OK, Verdict.FAIL),
        _r("cow.gup-longterm.ro-pin.ext4-shared", Outcome.OK, Verdict.PASS),
        _r(up_local, Outcome.OK, Verdict.PASS),
        _r("cow.private-write.other-mapping-unchanged.memfd-private", Outcome.OK, Verdict.PASS),
        _r(up_memfd, Outcome.OK, Verdict.PASS),
    ]
    good = {"tmp_fs": "tmpfs", "scratch_fs": "ext4"}
    # in mapping order: memfd, tmpfile (cow), local tmpfile (gup_longterm)
    assert [p.status for p in crosscheck.pairs(results, good)] == ["agree", "DISAGREE", "agree"]
    ps = crosscheck.pairs(results, {"tmp_fs": "ext4", "scratch_fs": "no"})
    assert [p.status for p in ps] == ["agree", "not compared", "not compared"]
    assert ps[1].refused == "/tmp is ext4, not tmpfs: upstream's memory there is not ours"
    assert ps[2].refused == "/mnt/ext4 is no, not ext4: upstream's memory there is not ours"
    assert crosscheck.disagreements(ps) == []
    assert "(/tmp is ext4, not tmpfs" in crosscheck.table(ps)
    # without the guest's facts nothing depending on a filesystem is compared
    assert [p.status for p in crosscheck.pairs(results)] == ["agree", "not compared", "not compared"]


def _r(case_id: str, outcome: Outcome, verdict: Verdict) -> CaseResult:
    return CaseResult(case_id, "p", outcome, verdict, "", "", Expectation(Expect.PASS))


UP_BASE = "kselftest.mm.cow.basic-cow-after-fork-with-base-page"
UP_HUGE = "kselftest.mm.cow.vmsplice-unmap-in-child-with-hugetlb-2048-kb"
UP_THP = "kselftest.mm.cow.basic-cow-after-fork-with-thp-2048-kb"
UP_SWAP = "kselftest.mm.cow.basic-cow-after-fork-with-swapped-out-base-page"


def test_crosscheck_compares_what_was_observed() -> None:
    results = [
        _r("cow.fork.child-keeps-data.base", Outcome.OK, Verdict.PASS),
        _r(UP_BASE, Outcome.OK, Verdict.PASS),
        # ours NOT_OK judged XFAIL by a rule; upstream's own XFAIL: both saw the leak
        _r("cow.vmsplice.unmap-in-child.hugetlb-2m", Outcome.NOT_OK, Verdict.XFAIL),
        _r(UP_HUGE, Outcome.XFAIL, Verdict.XFAIL),
        _r("cow.fork.child-keeps-data.thp", Outcome.NOT_OK, Verdict.FAIL),
        _r(UP_THP, Outcome.OK, Verdict.PASS),
        _r("cow.fork.child-keeps-data.base-swapped", Outcome.OK, Verdict.PASS),
        _r(UP_SWAP, Outcome.SKIP, Verdict.SKIP),
        _r("cow.fork.child-keeps-data.thp-pte", Outcome.OK, Verdict.PASS),  # upstream counterpart absent
    ]
    assert crosscheck.applies(results)
    ps = crosscheck.pairs(results)
    assert [(p.ours.id, p.status) for p in ps] == [
        ("cow.fork.child-keeps-data.base", "agree"),
        ("cow.fork.child-keeps-data.base-swapped", "not compared"),
        ("cow.fork.child-keeps-data.thp", "DISAGREE"),
        ("cow.vmsplice.unmap-in-child.hugetlb-2m", "agree"),
    ]
    assert [p.ours.id for p in crosscheck.disagreements(ps)] == ["cow.fork.child-keeps-data.thp"]
    text = crosscheck.table(ps)
    assert "DISAGREE      FAIL   PASS     cow.fork.child-keeps-data.thp  <->  " + UP_THP in text
    assert text.splitlines()[-1] == (
        "cross-check: 4 pairs: 2 agree, 1 disagree, 1 not compared "
        "(skipped or errored on a side, or not the same memory)"
    )
    assert not crosscheck.applies(results[:1])


def test_a_timed_out_kselftest_keeps_what_it_reported_and_is_not_rerun() -> None:
    from harness.judge import outcomes

    sel = suites.Selected(_program(), ("kselftest.mm.cow",))
    root = ktap.parse("TAP version 13\n1..3\n# [RUN] a\nok 1 fine\n# [RUN] b\n")
    results = kselftest.case_results("kselftest-mm-cow", "kselftest.mm.cow", (), root, rules(), KERNEL)
    kept, again = outcomes.after_timeout(sel, results, 900)
    assert again == []
    assert [(r.id, r.verdict) for r in kept] == [
        ("kselftest.mm.cow.a", Verdict.PASS),
        ("kselftest.mm.cow.b", Verdict.ERROR),
        ("kselftest.mm.cow.result-3", Verdict.ERROR),
    ]
    assert kept[1].reason.endswith("timed out: still running after 900s, killed in the guest")


def test_kernel_log_slices_follow_the_mirrored_upstream_result_lines() -> None:
    root = ktap.parse("TAP version 13\n1..3\n# [RUN] a\nok 1 No leak\n# [RUN] b\nok 2 No leak\n# [RUN] c\n")
    section = (
        "\n".join(
            [
                "[   10.000000] harness: begin kselftest-mm-cow",
                "[   10.100000] during a",
                "[   10.200000] harness: ok 1 No leak",
                "[   10.300000] WARNING: CPU: 1 PID: 99 at mm/gup.c:123 foo+0x1/0x2",
                "[   10.400000] harness: ok 2 No leak",
                "[   10.500000] BUG: kernel NULL pointer dereference, address: 0000000000000000",
            ]
        )
        + "\n"
    )
    got = kselftest.slices(root, "p", section)
    assert got["p.a"] == "[   10.100000] during a\n"
    assert "mm/gup.c:123" in got["p.b"] and "NULL pointer" not in got["p.b"]
    assert "NULL pointer" in got["p.c"]  # cut off: the rest goes to the case that was running
