"""slow: the whole "kernel from source" path, as a user on a fresh machine would run it.

harness source fetch debian:6.12 → harness build (tinyconfig + kernels/lean.config +
kernels/cow.config, CONFIG_GUP_TEST=y) → harness run with our cow suite and upstream mm/cow and
mm/gup_longterm on that kernel: the gup_test cases execute (not SKIP) on both sides and our
verdicts agree with upstream's on every overlapping case. ~15-20 min at -j2 with a cold ccache;
run by ci/nightly.sh, not .ci/run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness import cli
from tests.helpers.paths import REPO

pytestmark = [pytest.mark.slow, pytest.mark.vm]
KERNELS = REPO / "kernels"


def _results(run_dir: Path) -> dict[str, dict[str, object]]:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]
    return {str(r["id"]): r for r in rows}


def test_fetch_build_run_crosscheck(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["source", "fetch", "debian:6.12"]) == 0
    tree = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert (tree / "mm" / "gup_test.c").is_file()

    jobs = str(os.cpu_count() or 2)
    assert (
        cli.main(
            [
                "build",
                "--src",
                str(tree),
                "--fragment",
                str(KERNELS / "lean.config"),
                "--fragment",
                str(KERNELS / "cow.config"),
                "-j",
                jobs,
            ]
        )
        == 0
    )
    build_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert (build_dir / "arch" / "x86" / "boot" / "bzImage").is_file()
    assert "CONFIG_GUP_TEST=y" in (build_dir / ".config").read_text().splitlines()

    run_dir = tmp_path / "run"
    code = cli.main(
        [
            "run",
            "--kernel",
            str(build_dir),
            "--suite",
            "cow",
            "--suite",
            "kselftest:mm/cow",
            "--suite",
            "kselftest:mm/gup_longterm",
            "--out",
            str(run_dir),
            "--junit",
            str(tmp_path / "junit.xml"),
        ]
    )
    out = capsys.readouterr().out
    res = _results(run_dir)
    bad = {
        k: (v["verdict"], v["reason"]) for k, v in res.items() if v["verdict"] in ("FAIL", "XPASS", "ERROR")
    }
    assert bad == {}
    assert code == 0, out[-3000:]

    # gup_test is there: the gup cases ran on both sides
    ours_gup = [v for k, v in res.items() if k.startswith("cow.gup")]
    assert ours_gup and sum(v["verdict"] == "PASS" for v in ours_gup) > len(ours_gup) // 2
    assert res["cow.gup-pin-ro.exclusive.base"]["verdict"] == "PASS"
    up = res["kselftest.mm.cow.r-o-gup-pin-on-r-o-mapped-exclusive-page-with-base-page"]
    assert up["verdict"] == "PASS"
    gl = res["kselftest.mm.gup_longterm.r-w-longterm-gup-pin-in-map-shared-file-mapping-with-local-tmpfile"]
    assert gl["verdict"] == "PASS"  # ext4: the R/W pin must be refused, and is

    # the cross-check: printed, saved, no disagreement, and it compared gup cases
    text = (run_dir / "crosscheck.txt").read_text()
    assert text in out
    last = text.strip().splitlines()[-1]
    assert " 0 disagree" in last
    assert any(
        line.startswith("agree") and "cow.gup-pin-ro.exclusive.base" in line for line in text.splitlines()
    )

    junit = (tmp_path / "junit.xml").read_text()
    for suite in ("kselftest-mm-cow", "kselftest-mm-gup_longterm", "cow_gup", "cow_fork"):
        assert f'name="{suite}"' in junit
    fp = json.loads((run_dir / "fingerprint.json").read_text())
    assert fp["guest"]["gup_test"] == "yes"
