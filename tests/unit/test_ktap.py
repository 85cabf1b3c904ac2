"""harness.judge.ktap against recorded console captures and small synthetic logs (tests/data/ktap/)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from harness import model
from harness.judge import ktap
from harness.model import Outcome
from tests.helpers import paths

DATA = paths.DATA / "ktap"
DEBIAN_612 = "debian-6.12.117-cloud-static-init-probe-gup_longterm-cow.log"
DEBIAN_61 = "debian-6.1.192-cloud-static-init-probe-gup_longterm-cow.log"

# kselftest Totals keys -> the outcome each counts
TOTALS_KEYS = {
    "pass": Outcome.OK,
    "fail": Outcome.NOT_OK,
    "xfail": Outcome.XFAIL,
    "skip": Outcome.SKIP,
    "error": Outcome.ERROR,
}


def load(name: str) -> str:
    # Bytes decoded by hand: read_text() would turn CRLF into LF and hide what we test.
    return (DATA / name).read_bytes().decode("utf-8", errors="surrogateescape")


def outcomes(node: model.TestNode) -> Counter[Outcome]:
    return Counter(c.outcome for c in node.children)


def assert_totals_agree(doc: str, root: model.TestNode) -> None:
    totals = ktap.parse_totals(doc)
    assert totals is not None
    counts = outcomes(root)
    for key, outcome in TOTALS_KEYS.items():
        assert counts[outcome] == totals[key], key
    assert sum(counts.values()) == len(root.children)


def cow_document(name: str) -> str:
    docs = ktap.split_documents(load(name))
    (doc,) = [d for d in docs if "Basic COW after fork()" in d]
    return doc


# ---- recorded captures ---------------------------------------------------------------------


def test_host_gup_longterm_names_are_empty_and_reasons_kept() -> None:
    doc = load("host-6.18-upstream-gup_longterm.tap")
    root = ktap.parse(doc)
    assert root.plan == 50
    assert [c.number for c in root.children] == list(range(1, 51))
    first = root.children[0]
    # "ok 1 # SKIP gup_test not available": no name, the reason survives
    assert (first.name, first.outcome, first.reason) == ("", Outcome.SKIP, "gup_test not available")
    # the "# [INFO]" lines before "TAP version 13" are not part of the document
    assert first.diagnostics == ("[RUN] R/W longterm GUP pin in MAP_SHARED file mapping ... with memfd",)
    assert_totals_agree(doc, root)


def test_host_cow_keeps_every_result_in_order_without_dedupe() -> None:
    doc = load("host-6.18-upstream-cow.tap")
    root = ktap.parse(doc)
    assert root.plan == 778
    assert len(root.leaves()) == 778
    assert [c.number for c in root.children] == list(range(1, 779))
    names = Counter(c.name for c in root.children)
    assert names["No leak from parent into child"] > 100
    # every case is identified by the "# [RUN]" line printed just before it
    assert all(c.diagnostics[-1].startswith("[RUN] ") for c in root.children)
    runs = {c.diagnostics[-1] for c in root.children}
    assert len(runs) == 778
    assert_totals_agree(doc, root)
    assert root.diagnostics[0] == "Totals: pass:285 fail:0 xfail:4 xpass:0 skip:489 error:0"


def test_host_cow_xfail_reason() -> None:
    root = ktap.parse(load("host-6.18-upstream-cow.tap"))
    xfails = [c for c in root.children if c.outcome is Outcome.XFAIL]
    assert [c.number for c in xfails] == [161, 215, 269, 323]
    assert xfails[0].reason == "Leak from parent into child"


@pytest.mark.parametrize(
    ("name", "planned"),
    [(DEBIAN_612, 778), (DEBIAN_61, 190)],
)
def test_debian_console_cow_document(name: str, planned: int) -> None:
    text = load(name)
    # the numbers come from the capture itself: the plan line and the last result number
    doc = cow_document(name)
    assert re.search(rf"^1\.\.{planned}\r$", doc, re.MULTILINE)
    assert re.search(rf"^ok {planned} ", doc, re.MULTILINE)
    assert text.count("TAP version 13") == 2
    root = ktap.parse(doc)
    assert root.plan == planned
    assert len(root.children) == planned
    assert Outcome.ERROR not in outcomes(root)
    assert_totals_agree(doc, root)
    # the power-down printk after the document ends up as a trailing diagnostic, not a result
    assert any("reboot: Power down" in d for d in root.diagnostics)


def test_debian_console_splits_into_gup_then_cow() -> None:
    text = load(DEBIAN_612)
    docs = ktap.split_documents(text)
    assert len(docs) == 2
    assert docs[0].startswith("TAP version 13\r\n1..50\r\n")
    assert docs[1].startswith("TAP version 13\r\n")
    # nothing lost or duplicated from the first version line on
    assert "".join(docs) == text[text.index("TAP version 13") :]
    gup = ktap.parse(docs[0])
    assert gup.plan == 50 and len(gup.children) == 50
    assert_totals_agree(docs[0], gup)


def test_debian_61_gup_bail_out_after_all_results() -> None:
    docs = ktap.split_documents(load(DEBIAN_61))
    gup = ktap.parse(docs[0])
    assert gup.reason == "bail out: 1 out of 50 tests failed"
    assert len(gup.children) == 50
    assert Outcome.ERROR not in outcomes(gup)
    (failed,) = [c for c in gup.children if c.outcome is Outcome.NOT_OK]
    assert (failed.number, failed.name) == (48, "Should have failed")
    assert failed.diagnostics == (
        "[RUN] io_uring fixed buffer with MAP_PRIVATE file mapping ... with local tmpfile",
    )
    # lines after the bail out are kept, and the footer still agrees
    assert any(d.startswith("Totals: pass:7 fail:1") for d in gup.diagnostics)
    assert_totals_agree(docs[0], gup)


def test_debian_boot_noise_before_header_is_ignored() -> None:
    # the whole console: SeaBIOS escapes and the probe's "P01..." lines come first
    root = ktap.parse(load(DEBIAN_612))
    assert root.plan == 50  # parse() reads the first document only
    assert not any("P01" in d or "SeaBIOS" in d for c in root.children for d in c.diagnostics)


# ---- synthetic logs ------------------------------------------------------------------------


def test_nested_ktap_four_space_indent() -> None:
    root = ktap.parse(load("nested_ktap.ktap"))
    assert root.plan == 2
    basic, thp = root.children
    assert (basic.name, basic.outcome, basic.plan) == ("cow_basic", Outcome.NOT_OK, 3)
    assert [(c.name, c.outcome) for c in basic.children] == [
        ("fork_child_keeps_data", Outcome.OK),
        ("gup_pin", Outcome.NOT_OK),
        ("vmsplice", Outcome.SKIP),
    ]
    assert basic.children[1].diagnostics == ("gup_pin: pinned page stays shared",)
    # the subtest's own summary line, after its last result, goes to the closing result
    assert basic.diagnostics == ("cow_basic: pass:1 fail:1 skip:1 total:3",)
    (sizes,) = thp.children
    assert [c.name for c in sizes.children] == ["size_16k", "size_2m"]
    assert [n.name for n in root.leaves()] == [
        "fork_child_keeps_data",
        "gup_pin",
        "vmsplice",
        "size_16k",
        "size_2m",
    ]


def test_nested_tap14_two_space_indent_and_cut_off_subtest() -> None:
    root = ktap.parse(load("nested_tap14_cut.tap"))
    anon, shmem, hugetlb = root.children
    assert [c.name for c in anon.children] == ["fork", "vmsplice"]  # "- " separator dropped
    # the subtest closed by "not ok 2 - shmem" before its planned result 2
    assert shmem.children[1].outcome is Outcome.ERROR
    assert shmem.children[1].reason == "missing: subtest ended before result 2"
    # output ended inside "# Subtest: hugetlb": its result line never came
    assert (hugetlb.name, hugetlb.number, hugetlb.outcome) == ("hugetlb", 3, Outcome.ERROR)
    assert hugetlb.reason == "missing: output ended before result 3"
    assert [c.outcome for c in hugetlb.children] == [Outcome.OK, Outcome.ERROR]
    assert hugetlb.children[1].diagnostics == ("[RUN] vmsplice",)


def test_missing_plan_counts_results() -> None:
    doc = load("missing_plan.tap")
    root = ktap.parse(doc)
    assert root.plan is None
    assert [c.number for c in root.children] == [1, 2, 3]
    assert Outcome.ERROR not in outcomes(root)
    assert_totals_agree(doc, root)


def test_cut_off_mid_test_gives_errors_with_the_crash_output() -> None:
    root = ktap.parse(load("cut_off.tap"))
    assert len(root.children) == 5
    assert [c.outcome for c in root.children] == [Outcome.OK] * 2 + [Outcome.ERROR] * 3
    third = root.children[2]
    assert (third.number, third.name) == (3, "")
    assert third.reason == "missing: output ended before result 3"
    assert third.diagnostics[0] == "[RUN] vmsplice() + unmap in child ... with hugetlb (2048 kB)"
    assert "BUG: kernel NULL pointer dereference" in third.diagnostics[1]
    assert root.children[4].reason == "missing: output ended before result 5"
    assert root.children[4].diagnostics == ()


def test_bail_out_turns_remaining_planned_tests_into_errors() -> None:
    root = ktap.parse(load("bail_out.tap"))
    assert [c.number for c in root.children] == [1, 2, 3, 4]
    assert root.children[0].outcome is Outcome.OK
    for missing in root.children[1:]:
        assert missing.outcome is Outcome.ERROR
        assert "hugetlb pool exhausted" in missing.reason
    assert root.children[1].diagnostics == ("[RUN] hugetlb COW ... with 1048576 kB",)
    assert root.reason == "bail out: hugetlb pool exhausted"
    # a result printed after the bail out is not a result
    assert "ok 2 printed after the bail out" in root.diagnostics


def test_directives_outcomes_and_names() -> None:
    root = ktap.parse(load("directives.tap"))
    got = [(c.name, c.outcome, c.reason) for c in root.children]
    assert got == [
        ("plain name", Outcome.OK, ""),
        ("broken thing", Outcome.NOT_OK, ""),
        ("", Outcome.SKIP, "MADV_PAGEOUT did not work, is swap enabled?"),
        ("known gap", Outcome.XFAIL, "Leak from parent into child"),
        ("later", Outcome.TODO, "not implemented yet"),
        ("dashed name", Outcome.OK, ""),
        ("", Outcome.SKIP, ""),
        ("issue #42 still open", Outcome.NOT_OK, ""),
    ]


def test_skip_all_plan() -> None:
    root = ktap.parse(load("skip_all.tap"))
    assert (root.plan, root.outcome, root.reason) == (0, Outcome.SKIP, "no hugetlb pages reserved")
    assert root.children == ()


def test_crlf_and_ansi_escapes() -> None:
    raw = load("crlf_ansi.tap")
    assert "\r\n" in raw and "\x1b[" in raw  # the capture really is dirty
    root = ktap.parse(raw)
    assert root.plan == 3
    assert [(c.name, c.outcome) for c in root.children] == [
        ("green", Outcome.OK),
        ("red", Outcome.NOT_OK),
        ("", Outcome.SKIP),
    ]
    assert root.children[0].diagnostics == ("[RUN] bold description",)
    assert root.children[2].reason == "no swap"


def test_printk_prefix_stripped_and_interleaved_lines_are_diagnostics() -> None:
    root = ktap.parse(load("printk_ktap.log"))
    assert root.plan == 2
    suite, other = root.children
    # nested KTAP under a timestamp prefix whose width changes ("[    1.2]" -> "[  100.4]")
    assert (suite.name, suite.plan) == ("cow_kunit", 2)
    assert [(c.name, c.outcome) for c in suite.children] == [
        ("test_a", Outcome.OK),
        ("test_b", Outcome.NOT_OK),
    ]
    assert suite.children[1].diagnostics == (
        "virtio_blk virtio1: [vda] 2048 512-byte logical blocks",
        "userspace says hello",
    )
    assert (other.name, other.outcome, other.reason) == ("other_suite", Outcome.SKIP, "no swap")
    # boot messages before the version line are not diagnostics of anything
    assert all("Linux version" not in d for n in root.leaves() for d in n.diagnostics)


def test_constant_prefix_and_unprefixed_result_lookalike() -> None:
    text = "vm0| TAP version 13\nvm0| 1..2\nok 9 from another process\nvm0| ok 1 a\nvm0| ok 2 b\n"
    root = ktap.parse(text)
    assert [c.name for c in root.children] == ["a", "b"]
    assert root.children[0].diagnostics == ("ok 9 from another process",)


def test_no_header_parses_best_effort() -> None:
    root = ktap.parse(load("no_header.tap"))
    assert root.plan is None
    assert [(c.name, c.outcome) for c in root.children] == [
        ("one", Outcome.OK),
        ("two", Outcome.NOT_OK),
    ]
    assert ktap.split_documents(load("no_header.tap")) == []


def test_lines_before_header_are_ignored() -> None:
    root = ktap.parse("ok 7 stale result from a previous run\nTAP version 13\n1..1\nok 1 fresh\n")
    assert [c.name for c in root.children] == ["fresh"]


def test_parse_stops_at_the_next_document() -> None:
    text = "TAP version 13\n1..1\nok 1 first\nKTAP version 1\n1..2\nok 1 x\nok 2 y\n"
    root = ktap.parse(text)
    assert [c.name for c in root.children] == ["first"]
    docs = ktap.split_documents(text)
    assert [ktap.parse(d).plan for d in docs] == [1, 2]


def test_split_keeps_nested_version_lines_in_their_document() -> None:
    docs = ktap.split_documents(load("printk_ktap.log"))
    assert len(docs) == 1
    assert docs[0].count("KTAP version 1") == 2


def test_quoted_document_in_diagnostics_is_not_a_header() -> None:
    text = "TAP version 13\n1..1\n# TAP version 13\n# 1..3\n# ok 1 inner\nok 1 selftests: mm: cow\n"
    assert len(ktap.split_documents(text)) == 1
    root = ktap.parse(text)
    assert [c.name for c in root.children] == ["selftests: mm: cow"]
    assert root.children[0].diagnostics == ("TAP version 13", "1..3", "ok 1 inner")


def test_gap_in_numbering_is_an_error_in_place() -> None:
    root = ktap.parse("TAP version 13\n1..3\nok 1 a\nok 3 c\n")
    assert [(c.number, c.outcome) for c in root.children] == [
        (1, Outcome.OK),
        (2, Outcome.ERROR),
        (3, Outcome.OK),
    ]
    assert root.children[1].reason == "missing: result 2 never reported"


def test_parse_totals_absent_and_present() -> None:
    assert ktap.parse_totals("TAP version 13\n1..1\nok 1 a\n") is None
    totals = ktap.parse_totals("[ 1.0] # Totals: pass:3 fail:1 xfail:0 xpass:0 skip:2 error:0\r\n")
    assert totals == {"pass": 3, "fail": 1, "xfail": 0, "xpass": 0, "skip": 2, "error": 0}


def test_lf_cr_line_ends() -> None:
    # some serial setups send "\n\r" instead of "\r\n": every line then starts with a CR
    root = ktap.parse("TAP version 13\n\r1..2\n\rok 1 a\n\rnot ok 2 b\n\r")
    assert [(c.name, c.outcome) for c in root.children] == [
        ("a", Outcome.OK),
        ("b", Outcome.NOT_OK),
    ]


def test_ktap_subtest_cut_off_is_named_from_its_subtest_line() -> None:
    text = "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: cow_kunit\n    1..2\n    ok 1 a\n"
    (suite,) = ktap.parse(text).children
    assert (suite.name, suite.outcome, suite.plan) == ("cow_kunit", Outcome.ERROR, 2)
    assert [c.outcome for c in suite.children] == [Outcome.OK, Outcome.ERROR]


def test_indented_subtest_line_opens_a_named_block() -> None:
    # older kunit output: "# Subtest:" is the first line of the indented block, no version line
    text = (
        "TAP version 14\n1..2\n"
        "    # Subtest: first\n    1..1\n    ok 1 a\nok 1 - first\n"
        "    # Subtest: second\n    1..1\n"
    )
    first, second = ktap.parse(text).children
    assert (first.name, first.outcome, len(first.children)) == ("first", Outcome.OK, 1)
    assert (second.name, second.outcome, second.plan) == ("second", Outcome.ERROR, 1)
