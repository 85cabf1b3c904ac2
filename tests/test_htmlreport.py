"""harness.htmlreport: the run/matrix page and the comparison page, from recorded results."""

from __future__ import annotations

import dataclasses
import os
import re
from html.parser import HTMLParser
from pathlib import Path

from harness import compare, htmlreport, kmsg, resultset
from harness.model import Verdict
from results_data import MATRIX, RUN_612, edited_copy, set_verdict

GOLDEN = Path(__file__).parent / "data" / "golden" / "report_matrix.html"
KMSG = Path(__file__).parent / "data" / "kmsg"
REGEN = os.environ.get("HARNESS_REGEN_GOLDEN") == "1"
VOID = {"meta", "br", "hr", "img", "link", "input"}


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
    output = "test said <b>hi</b> & \x1b[31mred\x1b[0m\n\n" + htmlreport.SPLAT_MARK + "\n" + \
        "\n\n".join(e.excerpt for e in events)
    return resultset.CaseSummary("debian:6.12", "cow.fork.child-keeps-data.thp", "cow_fork", Verdict.FAIL,
                                 (Verdict.FAIL,), f"kernel warning: {events[0].title}", output,
                                 tuple(e.title for e in events))


def test_the_matrix_page_is_complete_and_self_contained() -> None:
    rs = resultset.load(MATRIX)
    page = htmlreport.run_page(rs, "matrix m1", footer="harness test")
    c = check(page)
    text = " ".join(c.text)
    assert 'class="banner ok"' in page and "All 56 cases as expected" in text
    for case in rs.cases:
        assert case.id in text
    assert "debian:6.1.0-56" in text and "6.1.192" in text
    assert page.count('class="v v-XFAIL" title=') == 4  # matrix cells (the kernels table has counts)
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
    flaky = dataclasses.replace(c0, verdict=Verdict.FLAKY, verdicts=(Verdict.PASS, Verdict.FAIL, Verdict.PASS))
    page = htmlreport.run_page(dataclasses.replace(rs, cases=(flaky,) + rs.cases[1:]), "run")
    check(page)
    assert '<td class="v v-FLAKY"' in page and "FLAKY 2/3" in page


def test_the_comparison_page(tmp_path: Path) -> None:
    night2 = edited_copy(RUN_612, tmp_path / "n2", lambda r: set_verdict(r, "cow.unshare.vmsplice.base", "FAIL", "Leak"))
    c = compare.compare(resultset.load(RUN_612), resultset.load(night2))
    page = htmlreport.comparison_page(c, "night1 → night2")
    check(page)
    assert 'class="banner bad"' in page and ">1 regression<" in page
    assert re.search(r'<h2 id="regression">regression \(1\)</h2>', page)
    same = htmlreport.comparison_page(compare.compare(resultset.load(RUN_612), resultset.load(RUN_612)))
    check(same)
    assert 'class="banner ok"' in same and "No regressions" in same
