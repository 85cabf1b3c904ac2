"""Guest text made safe where it goes: terminals, CI summaries' Markdown fences,
files; non-UTF-8 never crashes a writer (review B3, B4)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import reportio, safetext
from harness.report import resultset
from harness.run import matrix
from tests.contract.test_cli_errors import cli
from tests.helpers.results_data import RUN_612, edited_copy, set_verdict

HOSTILE = "L \udcff \x1b]0;pwn\x07 \x9b2J \x1b[31m red \x08\x7f ```` end"
_RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


@pytest.mark.parametrize("fn", [safetext.terminal_line, safetext.terminal_text, safetext.xml_safe])
def test_no_control_character_or_lone_surrogate_survives(fn) -> None:  # type: ignore[no-untyped-def]
    shown = fn(HOSTILE)
    assert not _RAW.search(shown)
    assert "\\xff" in shown  # the byte that was not UTF-8 stays as evidence
    shown.encode("utf-8")


def test_file_text_encodes_whatever_came() -> None:
    assert safetext.file_text("a\udcffb\ud800") == "a\\xffb\ufffd"


def test_markdown_block_cannot_be_closed_from_inside() -> None:
    text = "FAIL  x  reason\n```\n## injected heading\n`````\n"
    block = safetext.markdown_block(text)
    fence = block.split("\n")[0].removesuffix("text")
    assert len(fence) == 6 and block.rstrip().endswith(fence)
    inner = block.split("\n")[1:-2]
    assert all(not line.lstrip().startswith(fence) for line in inner)


def test_writers_never_crash_on_non_utf8(tmp_path: Path) -> None:
    reportio.write_text(tmp_path / "s.txt", "x \udcff y")
    assert (tmp_path / "s.txt").read_text() == "x \\xff y"


def test_compare_with_hostile_reasons_is_exit_1_not_a_traceback(tmp_path: Path) -> None:
    new = edited_copy(
        RUN_612, tmp_path / "b", lambda r: set_verdict(r, "cow.unshare.vmsplice.base", "FAIL", HOSTILE)
    )
    p = cli(tmp_path, "compare", str(RUN_612), str(new), "--out", str(tmp_path / "o"))
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr  # 1: a regression, as it is
    assert not _RAW.search(p.stdout)
    assert "\\xff" in (tmp_path / "o" / "compare.txt").read_text()


def test_matrix_summary_with_hostile_text_is_safe_and_writable(tmp_path: Path) -> None:
    cases = resultset.summarize([{"kernel": "k\x1b[2J", "id": "a\x9b", "verdict": "SKIP", "reason": HOSTILE}])
    rs = resultset.ResultSet("x", tuple(cases), ("k\x1b[2J",), {})
    text = matrix.summary_text(
        rs, {("k\x1b[2J", 1): matrix.JobResult(2, "guest log:\n```\n\x1b]0;x\x07", 1)}, 1
    )
    assert not _RAW.search(text.replace("\n", ""))
    reportio.write_text(tmp_path / "summary.txt", text)
    for line in text.splitlines():
        assert not line.startswith("```")
