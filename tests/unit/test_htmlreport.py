"""harness.htmlreport: the run/matrix page and the comparison page, from recorded results."""

from __future__ import annotations

import dataclasses
import os
import re
from html.parser import HTMLParser
from pathlib import Path

from harness.judge import kmsg
from harness.model import Verdict
from harness.report import compare, htmlreport, resultset
from tests.helpers.paths import DATA
from tests.helpers.results_data import LINES, MATRIX, RUN_612, edited_copy, set_verdict, synthetic_matrix

GOLDEN = DATA / "golden" / "report_matrix.html"
KMSG = DATA / "kmsg"
REGEN = os.environ.get("HARNESS_REGEN_GOLDEN") == "1"
VOID = {"meta", "br", "hr", "img", "link", "input", "col", "wbr"}


class Checker(HTMLParser):
    """Balanced tags, and everything a page must not have to stay self-contained."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "img", "link", "iframe"):
            self.problems.append(f"<{tag}>")
        for k, v in attrs:
            if k in ("src", "href") and v and not v.startswith("#"):
                self.problems.append(f"{k}={v}")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check(page: str) -> Checker:
    c = Checker()
    c.feed(page)
    c.close()
    assert not c.problems, c.problems[:5]
    assert not c.stack, c.stack
    assert "url(" not in page and "@import" not in page  # nothing fetched by the CSS either
    return c


def splat_case() -> resultset.CaseSummary:
    """A case during which the kernel WARNed: the output as runner/outcomes write it."""
    log = (KMSG / "real-6.12-warning.log").read_text(errors="replace")
    events = kmsg.scan(log)
    assert events
    output = (
        "test said <b>hi</b> & \x1b[31mred\x1b[0m\n\n"
        + htmlreport.SPLAT_MARK
        + "\n"
        + "\n\n".join(e.excerpt for e in events)
    )
    return resultset.CaseSummary(
        "debian:6.12",
        "cow.fork.child-keeps-data.thp",
        "cow_fork",
        Verdict.FAIL,
        (Verdict.FAIL,),
        f"kernel warning: {events[0].title}",
        output,
        tuple(e.title for e in events),
    )


def test_the_matrix_page_is_complete_and_self_contained() -> None:
    rs = resultset.load(MATRIX)
    page = htmlreport.run_page(rs, "matrix m1", footer="harness test")
    c = check(page)
    text = " ".join(c.text)
    assert 'class="banner ok"' in page and "All 56 cases as expected" in text
    for case in rs.cases:
        assert case.id in text
    assert "debian:6.1.0-56" in text and "6.1.192" in text
    grid = page[page.index('id="matrix"') :]
    assert grid.count('class="v v-XFAIL" title=') == 4  # matrix cells (the kernels table has counts)
    # the recorded 6.1 run was given second on the command line; its column comes first
    assert grid.index("debian:<wbr>6.1.0-56") < grid.index("debian:<wbr>6.12")
    # what 6.12 does differently: 2 XFAIL -> PASS, 7 SKIP -> PASS, listed first and marked
    assert "Changes across kernels (9 of 28 cases)" in text
    changes = page[page.index('id="changes"') : page.index('id="matrix"')]
    assert changes.count('class="v v-PASS chg"') == 9 and changes.count('<tr class="changes">') == 9
    assert "changes from the kernel to its left" in text
    assert "Known kernel gaps (XFAIL) (4)" in text and "Skipped (9)" in text


def test_golden() -> None:
    page = htmlreport.run_page(resultset.load(MATRIX), "matrix m1", footer="harness test")
    if REGEN:
        GOLDEN.write_text(page)
    assert page == GOLDEN.read_text()


def test_a_failure_leads_the_page_with_its_kernel_report() -> None:
    rs = resultset.load(RUN_612)
    bad = splat_case()
    rs = dataclasses.replace(rs, cases=(bad,) + rs.cases[1:])
    page = htmlreport.run_page(rs, "run", {"debian:6.12": ""})
    c = check(page)
    assert 'class="banner bad"' in page and "1 unexpected verdict" in page
    # the unexpected case comes before the matrix, with the kernel's report in full
    assert page.index('id="unexpected"') < page.index('id="matrix"')
    assert bad.kernel_events[0] in " ".join(c.text)
    assert "&lt;b&gt;hi&lt;/b&gt; &amp;" in page and "\x1b" not in page  # console text is inert
    assert '<h2 id="splats">Kernel reports</h2>' in page


def test_a_flaky_case_shows_its_runs_and_rate() -> None:
    rs = resultset.load(RUN_612)
    c0 = rs.cases[0]
    flaky = dataclasses.replace(
        c0, verdict=Verdict.FLAKY, verdicts=(Verdict.PASS, Verdict.FAIL, Verdict.PASS)
    )
    page = htmlreport.run_page(dataclasses.replace(rs, cases=(flaky,) + rs.cases[1:]), "run")
    check(page)
    assert '<td class="v v-FLAKY"' in page and "FLAKY 2/3" in page


def test_the_comparison_page(tmp_path: Path) -> None:
    night2 = edited_copy(
        RUN_612, tmp_path / "n2", lambda r: set_verdict(r, "cow.unshare.vmsplice.base", "FAIL", "Leak")
    )
    c = compare.compare(resultset.load(RUN_612), resultset.load(night2))
    page = htmlreport.comparison_page(c, "night1 → night2")
    check(page)
    assert 'class="banner bad"' in page and ">1 regression<" in page
    assert re.search(r'<h2 id="regression">regression \(1\)</h2>', page)
    same = htmlreport.comparison_page(compare.compare(resultset.load(RUN_612), resultset.load(RUN_612)))
    check(same)
    assert 'class="banner ok"' in same and "No regressions" in same


def _shuffled_lines() -> list[tuple[str, str, str]]:
    """The ten kernel lines, given in an order that is neither version nor string order."""
    order = [7, 2, 9, 0, 5, 3, 8, 1, 6, 4]
    return [LINES[i] for i in order]


def _ten_kernels(tmp_path: Path) -> resultset.ResultSet:
    def edit(label: str, recs: list[dict[str, object]]) -> list[dict[str, object]]:
        line = label.removeprefix("debian:")
        if line in ("6.1", "6.12"):  # a gap fixed in 6.16
            set_verdict(recs, "cow.unshare.odirect-write.base", "XFAIL")
        if line in ("7.1", "7.2", "7.3"):  # a feature gone in 7.1
            set_verdict(recs, "cow.unshare.vmsplice.base", "SKIP", "no <vmsplice> & \x1b[1mthat\x1b[0m")
        if line == "6.18":  # one kernel out of step: changes to it and back
            set_verdict(recs, "cow.unshare.proc-mem.thp", "FLAKY")
        return recs

    return resultset.load(synthetic_matrix(tmp_path / "ten", _shuffled_lines(), edit=edit))


def test_kernels_are_columns_in_upstream_version_order_and_changes_are_marked(tmp_path: Path) -> None:
    rs = _ten_kernels(tmp_path)
    assert rs.kernels[0] == "debian:7.1"  # the command-line order
    page = htmlreport.run_page(rs, "ten kernels")
    c = check(page)
    labels = [k for k, _, _ in LINES]
    for section in ("changes", "matrix"):
        part = page[page.index(f'id="{section}"') :]
        heads = [part.index(f"{esc_label(k)}<br>") for k in labels]
        assert heads == sorted(heads), section  # 6.1 < 6.12 < 6.16 < ... < 7.0 < ... < 7.3
    kernels_table = page[page.index('id="kernels"') : page.index('id="unexpected"')]
    assert [kernels_table.index(f"<th>{k}</th>") for k in labels] == sorted(
        kernels_table.index(f"<th>{k}</th>") for k in labels
    )
    changed = htmlreport.changed_cells(rs, rs.kernels_by_version())
    assert changed["cow.unshare.odirect-write.base"] == [i == 2 for i in range(10)]  # XFAIL | PASS from 6.16
    assert changed["cow.unshare.vmsplice.base"] == [i == 7 for i in range(10)]  # PASS | SKIP from 7.1
    assert changed["cow.unshare.proc-mem.thp"] == [i in (4, 5) for i in range(10)]  # into 6.18 and out again
    assert not any(changed["cow.unshare.vmsplice.thp"])
    text = " ".join(c.text)
    assert "Changes across kernels (3 of 28 cases)" in text and "Matrix (28 cases × 10 kernels)" in text
    changes = page[page.index('id="changes"') : page.index('id="matrix"')]
    assert changes.count(' chg"') == 4 and changes.count(htmlreport.CHANGE_MARK) == 4 + 1  # + the legend's
    assert 'title="changes from debian:6.12 (XFAIL)' in changes
    assert "no &lt;vmsplice&gt; &amp; " in page and "\x1b" not in page
    # the cases a person must read stay on top
    assert (
        page.index('id="unexpected"')
        < page.index('id="splats"')
        < page.index('id="changes"')
        < page.index('id="matrix"')
    )


def esc_label(label: str) -> str:
    return label.replace(":", ":<wbr>", 1)


def test_a_big_matrix_is_readable(tmp_path: Path) -> None:
    """420 cases on 10 kernels: the changing rows first, the full grid folded per program."""
    ids = [f"cow.synthetic.case-{n}" for n in range(420)]
    cases = []
    for i, (label, _, _) in enumerate(LINES):
        for n, case_id in enumerate(ids):
            v = Verdict.XFAIL if n % 100 == 0 and i < 4 else Verdict.PASS
            cases.append(resultset.CaseSummary(label, case_id, f"prog{n // 150}", v, (v,), "", ""))
    rs = resultset.ResultSet("big", tuple(cases), tuple(k for k, _, _ in reversed(LINES)))
    page = htmlreport.run_page(rs, "big")
    check(page)
    assert "Changes across kernels (5 of 420 cases)" in page
    changes = page[page.index('id="changes"') : page.index('id="matrix"')]
    assert changes.count('<tr class="changes">') == 5 and "<details" not in changes
    grid = page[page.index('id="matrix"') :]
    assert grid.count('<details class="grid">') == 3 and '<details class="grid" open>' not in grid
    assert "(150 cases, 2 changing across kernels)" in grid


def test_one_kernel_has_no_changes_section() -> None:
    page = htmlreport.run_page(resultset.load(RUN_612), "run")
    check(page)
    assert 'id="changes"' not in page and "Matrix (28 cases × 1 kernel)" in page and " chg" not in page
    assert '<details class="grid" open>' in page


def test_memory_types_are_columns_in_family_order() -> None:
    from harness.report import cowgrid

    mems = [
        "ext4-shared",
        "zzz",
        "mthp-1024k",
        "hugetlb-1g",
        "thp",
        "mthp-16k",
        "anon-shared",
        "base-swapped",
        "memfd-private",
        "huge-zeropage",
        "tmpfs-private",
        "hugetlb-2m",
        "zeropage",
        "mthp-128k",
        "base",
    ]
    assert sorted(mems, key=cowgrid.memtype_key) == [
        "base",
        "base-swapped",
        "thp",
        "mthp-16k",
        "mthp-128k",
        "mthp-1024k",
        "hugetlb-2m",
        "hugetlb-1g",
        "zeropage",
        "huge-zeropage",
        "memfd-private",
        "tmpfs-private",
        "ext4-shared",
        "anon-shared",
        "zzz",
    ]
    # the mTHP forms by size, then name; the new THP and 1 GiB memfd forms in their families
    more = [
        "mthp-16k-swapped",
        "hugetlb-memfd-1g-shared",
        "mthp-1024k-single-pte",
        "thp-single-pte-swapped",
        "mthp-16k",
        "thp-mremap",
        "thp-single-pte",
        "hugetlb-memfd-shared",
    ]
    assert sorted(more, key=cowgrid.memtype_key) == [
        "thp-single-pte",
        "thp-single-pte-swapped",
        "thp-mremap",
        "mthp-16k",
        "mthp-16k-swapped",
        "mthp-1024k-single-pte",
        "hugetlb-memfd-shared",
        "hugetlb-memfd-1g-shared",
    ]
    assert cowgrid.split_id("cow.fork.child-keeps-data.thp") == ("cow.fork.child-keeps-data", "thp")
    assert cowgrid.split_id("probe.perf-rb.odirect-write") is None and cowgrid.split_id("cow.x") is None


def test_the_cow_grid_of_the_whole_suite_on_two_kernels() -> None:
    from tests.helpers.results_data import cow_grid_shape, whole_suite_matrix

    rs = whole_suite_matrix()
    page = htmlreport.run_page(rs, "whole suite")
    c = check(page)
    text = " ".join(c.text)
    ops, mems, cases = cow_grid_shape()
    assert ops >= 46 and mems >= 33 and cases >= 481
    assert f"COW suite: operation × memory type ({ops} × {mems})" in text
    grids = re.findall(r'<table class="cowgrid" data-kernel="([^"]+)">(.*?)</table>', page)
    assert [k for k, _ in grids] == ["debian:6.1.0-56", "debian:6.12"]  # version order
    for _, table in grids:
        assert table.count("<tr>") == 1 + ops and table.count('<th class="mem"') == mems
        assert table.count("<td") == ops * mems and table.count('<td class="none">') == ops * mems - cases
    one = grids[1][1]
    assert (
        'title="cow.vmsplice.unmap-in-child.hugetlb-2m: XFAIL - ' in one
        and 'title="cow.fork.child-keeps-data.thp: PASS">✓</td>' in one
    )
    # folded per kernel, the newest open; the probes are not in the grid but stay in the lists
    assert page.count('<details class="cow">') == 1 and page.count('<details class="cow" open>') == 1
    assert "probe.perf-rb.odirect-write" in text and "probe.perf-rb" not in "".join(t for _, t in grids)
    diff = page[page.index('id="cow-diff"') : page.index('<details class="cow"')]
    # 150 + the sharper-tests cases: iouring-register-efault.perf-rb, softdirty-clean.{process-vm-readv,odirect-write}.thp,
    # and the unshare matrix: odirect-write on 6 more types (6.1 XFAIL), 3 ops x 7 mTHP sizes (6.1 SKIP);
    # then the mTHP forms (16 ops x 7 sizes x 5 forms, 6.1 SKIP), cow_dio (3, 6.1 XFAIL) and the R/O
    # pins of the 1 GiB memfd (2, 6.1 XFAIL)
    assert "Cells that differ between kernels (745)" in diff
    assert (
        'title="cow.unshare.odirect-write.base: debian:6.1.0-56 XFAIL → debian:6.12 PASS">'
        '<span class="v-XFAIL">xf</span> → 6.12 <span class="v-PASS">✓</span></td>'
    ) in diff
    assert '<th class="mem" scope="col">thp-single-pte</th>' not in diff  # no column without a difference


def test_the_diff_grid_names_each_kernel_where_a_cell_changes(tmp_path: Path) -> None:
    rs = _ten_kernels(tmp_path)
    page = htmlreport.run_page(rs, "ten kernels")
    check(page)
    diff = page[page.index('id="cow-diff"') : page.index('<details class="cow"')]
    assert "Cells that differ between kernels (3)" in diff
    # into 6.18 and out again; a SKIP from 7.1 on
    assert (
        '<span class="v-PASS">✓</span> → 6.18 <span class="v-FLAKY">~</span> → 6.19 <span class="v-PASS">✓</span>'
        in diff
    )
    assert '<span class="v-PASS">✓</span> → 7.1 <span class="v-SKIP">s</span></td>' in diff
    assert page.count('<details class="cow"') == 10 and page.count('<details class="cow" open>') == 1


def test_one_kernel_has_its_grid_unfolded_and_no_diff() -> None:
    page = htmlreport.run_page(resultset.load(RUN_612), "run")
    check(page)
    assert 'id="cow-grid"' in page and 'id="cow-diff"' not in page and '<details class="cow"' not in page
    assert page.count('<table class="cowgrid"') == 1
