"""The HTML pages rendered by a real headless browser (Debian's chromium), and the screenshot
checked: the right size, not blank, the banner in the colour that tells pass from fail, and
the verdict colours of the matrix on screen."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from harness.model import Verdict
from harness.report import compare, htmlreport, resultset
from tests.helpers import pngread
from tests.helpers.paths import REPO
from tests.helpers.results_data import MATRIX, RUN_612, edited_copy, set_verdict
from tests.unit.test_htmlreport import splat_case

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (apt-get install chromium; ci/setup.sh does)"
)
WIDTH, HEIGHT = 1280, 900


def screenshot(page: str, tmp_path: Path, name: str) -> tuple[int, int, list[list[pngread.Pixel]]]:
    html = tmp_path / f"{name}.html"
    html.write_text(page, encoding="utf-8")
    png = tmp_path / f"{name}.png"
    assert CHROMIUM is not None
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--screenshot={png}",
        f"--window-size={WIDTH},{HEIGHT}",
        html.as_uri(),
    ]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert png.is_file(), f"no screenshot (exit {p.returncode}): {p.stderr[-2000:]}"
    return pngread.read(png)


def dominant(rows: list[list[pngread.Pixel]], y0: int, y1: int) -> pngread.Pixel:
    return Counter(p for row in rows[y0:y1] for p in row).most_common(1)[0][0]


def count_near(rows: list[list[pngread.Pixel]], colour: str) -> int:
    """Pixels within a few levels of `colour` (anti-aliased edges aside, a fill is exact)."""
    want = pngread.hex_rgb(colour)
    hist = Counter(p for row in rows for p in row)
    return sum(n for p, n in hist.items() if pngread.near(p, want, 6))


def test_a_passing_matrix_page_renders_green_with_its_verdict_cells(tmp_path: Path) -> None:
    w, h, rows = screenshot(htmlreport.run_page(resultset.load(MATRIX), "matrix"), tmp_path, "ok")
    assert (w, h) == (WIDTH, HEIGHT)
    assert len({p for row in rows for p in row}) > 50, "blank page"  # text is anti-aliased
    assert pngread.near(dominant(rows, 5, 60), pngread.hex_rgb(htmlreport.BANNER_OK))
    # the kernel table's counts and the matrix cells: green PASS and blue-grey XFAIL on screen
    assert count_near(rows, htmlreport.COLOURS[Verdict.PASS][0]) > 2000
    assert count_near(rows, htmlreport.COLOURS[Verdict.XFAIL][0]) > 200
    assert count_near(rows, htmlreport.COLOURS[Verdict.FAIL][0]) == 0


def test_a_failing_page_renders_red_with_the_failure_and_flaky_markers(tmp_path: Path) -> None:
    rs = resultset.load(RUN_612)
    flaky = dataclasses.replace(
        rs.cases[1], verdict=Verdict.FLAKY, verdicts=(Verdict.PASS, Verdict.FAIL, Verdict.PASS)
    )
    rs = dataclasses.replace(rs, cases=(splat_case(), flaky) + rs.cases[2:])
    w, h, rows = screenshot(htmlreport.run_page(rs, "run"), tmp_path, "bad")
    assert (w, h) == (WIDTH, HEIGHT)
    assert pngread.near(dominant(rows, 5, 60), pngread.hex_rgb(htmlreport.BANNER_BAD))
    assert count_near(rows, htmlreport.COLOURS[Verdict.FAIL][0]) > 100  # FAIL count cell and tag
    assert count_near(rows, htmlreport.COLOURS[Verdict.FLAKY][0]) > 100
    # the kernel's report is on the first screen: the dark <pre> of the output
    assert count_near(rows, "#1e1e1e") > 5000


def test_the_comparison_page_renders_red_on_a_regression(tmp_path: Path) -> None:
    night2 = edited_copy(
        RUN_612, tmp_path / "n2", lambda r: set_verdict(r, "cow.unshare.vmsplice.base", "FAIL", "Leak")
    )
    c = compare.compare(resultset.load(RUN_612), resultset.load(night2))
    _, _, rows = screenshot(htmlreport.comparison_page(c), tmp_path, "cmp")
    assert pngread.near(dominant(rows, 5, 60), pngread.hex_rgb(htmlreport.BANNER_BAD))
    _, _, rows = screenshot(
        htmlreport.comparison_page(compare.compare(resultset.load(RUN_612), resultset.load(RUN_612))),
        tmp_path,
        "same",
    )
    assert pngread.near(dominant(rows, 5, 60), pngread.hex_rgb(htmlreport.BANNER_OK))


DOCS_PNG = REPO / "docs" / "report.png"


def test_the_cow_grid_of_a_whole_suite_matrix_is_on_screen_and_readable(tmp_path: Path) -> None:
    """The realistic page (423 cases on two kernels): the grid tables have one row per operation
    and one column per memory type, and on a tall screen the grid's verdict colours show. The
    screenshot is kept as docs/report.png (the README shows it; HARNESS_REGEN_GOLDEN=1 rewrites it)."""
    import re

    from tests.helpers.results_data import cow_grid_shape, whole_suite_matrix

    page = htmlreport.run_page(whole_suite_matrix(), "debian:6.1.0-56 and debian:6.12, every case")
    tables = re.findall(r'<table class="cowgrid" data-kernel="[^"]+">(.*?)</table>', page)
    assert len(tables) == 2
    ops, mems, _ = cow_grid_shape()
    for t in tables:
        assert (
            t.count("<tr>") == 1 + ops and t.count('<th class="mem"') == mems and t.count("<td") == ops * mems
        )
    global WIDTH, HEIGHT
    saved = (WIDTH, HEIGHT)
    WIDTH, HEIGHT = 1280, 1750
    try:
        w, h, rows = screenshot(page, tmp_path, "grid")
    finally:
        WIDTH, HEIGHT = saved
    assert (w, h) == (1280, 1750)
    # the grid's lower half (the newest kernel's open grid, below the differences, which the mTHP
    # forms made taller: ~12700 PASS pixels at 71 columns): PASS cells, SKIP cells, XFAIL cells
    lower = rows[h // 2 :]
    assert count_near(lower, htmlreport.COLOURS[Verdict.PASS][0]) > 10000
    assert count_near(lower, htmlreport.COLOURS[Verdict.SKIP][0]) > 10000
    assert count_near(lower, htmlreport.COLOURS[Verdict.XFAIL][0]) > 500
    png = tmp_path / "grid.png"
    assert png.stat().st_size < 300_000
    if os.environ.get("HARNESS_REGEN_GOLDEN"):  # like the golden files: rewritten on purpose only
        DOCS_PNG.parent.mkdir(exist_ok=True)
        DOCS_PNG.write_bytes(png.read_bytes())
