"""The real CLI: `harness compare`, `harness report`, and the matrix options' bad input (exit 2,
one line, before anything boots)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.contract.test_cli_errors import assert_one_error, cli
from tests.helpers.results_data import MATRIX, RUN_61, RUN_612, edited_copy, set_verdict, synthetic_matrix


def test_compare_same_run_exits_0(tmp_path: Path) -> None:
    p = cli(tmp_path, "compare", str(MATRIX), str(MATRIX), "--out", str(tmp_path / "cmp"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.rstrip().splitlines()[-1].startswith("compare: 0 regression, 0 fixed")
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["regressions"] == 0
    assert "No regressions" in (tmp_path / "cmp" / "compare.html").read_text()
    assert (tmp_path / "cmp" / "compare.txt").read_text() == p.stdout


def test_compare_regression_exits_1(tmp_path: Path) -> None:
    night2 = edited_copy(
        RUN_612, tmp_path / "n2", lambda r: set_verdict(r, "cow.unshare.vmsplice.base", "FAIL", "Leak")
    )
    p = cli(tmp_path, "compare", str(RUN_612 / "results.jsonl"), str(night2))
    assert p.returncode == 1, p.stderr
    assert "REGRESSION" in p.stdout and "cow.unshare.vmsplice.base" in p.stdout and p.stderr == ""


def test_compare_across_kernels_is_not_a_regression(tmp_path: Path) -> None:
    p = cli(tmp_path, "compare", str(RUN_61), str(RUN_612))
    assert p.returncode == 0 and "kernels matched: debian:6.1.0-56 -> debian:6.12" in p.stdout


def test_compare_pairs_new_packages_of_a_kernel_line(tmp_path: Path) -> None:
    old = synthetic_matrix(
        tmp_path / "n1",
        [
            ("debian:6.1.0-56", "6.1.0-56-amd64", "6.1.192"),
            ("debian:6.12", "6.12.117+deb12-amd64", "6.12.117"),
        ],
    )
    new = synthetic_matrix(
        tmp_path / "n2",
        [
            ("debian:6.1.0-57", "6.1.0-57-amd64", "6.1.193"),
            ("debian:6.12", "6.12.118+deb12-amd64", "6.12.118"),
        ],
    )
    p = cli(tmp_path, "compare", str(old), str(new), "--out", str(tmp_path / "cmp"))
    assert p.returncode == 0, p.stderr
    assert "6.1 line: 6.1.0-56 (6.1.192) -> 6.1.0-57 (6.1.193)" in p.stdout
    assert "6.12 line: 6.12.117+deb12 -> 6.12.118+deb12" in p.stdout
    assert " 0 new, 0 removed," in p.stdout
    assert (
        "6.1 line: 6.1.0-56 (6.1.192) → 6.1.0-57 (6.1.193)" in (tmp_path / "cmp" / "compare.html").read_text()
    )


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda t: t / "missing", ["no such file"]),
        (lambda t: t, ["not a run directory"]),
        (
            lambda t: (t / "results.jsonl").write_text('{"id": 1}\n{"id": "a", "verdict": "PASS"}\n') and t,
            ["record 1"],
        ),
        (
            lambda t: (t / "results.jsonl").write_text('garbage\n{"id": "a", "verdict": "PASS"}\n') and t,
            ["results.jsonl:1"],
        ),
    ],
)
def test_compare_bad_input_is_one_line_exit_2(tmp_path: Path, make, words: list[str]) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad"
    bad.mkdir()
    path = make(bad)
    assert_one_error(cli(tmp_path, "compare", str(path), str(MATRIX)), *words)
    assert_one_error(cli(tmp_path, "compare", str(MATRIX), str(path)), *words)


def test_report_rewrites_the_pages_of_a_run_dir(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(MATRIX, tmp_path / "m")
    p = cli(tmp_path, "report", str(tmp_path / "m"))
    assert p.returncode == 0, p.stderr
    assert "All 56 cases as expected" in (tmp_path / "m" / "report.html").read_text()
    assert len(json.loads((tmp_path / "m" / "kcidb.json").read_text())["tests"]) == 56


@pytest.mark.parametrize(
    "args, words",
    [
        (["--shard", "0/4"], ["--shard 0/4"]),
        (["--shard", "x"], ["--shard x"]),
        (["--repeat", "0", "--kernel", "a", "--kernel", "b"], ["--repeat 0"]),
        (["-j", "0", "--kernel", "a", "--kernel", "b"], ["-j 0"]),
        (["--kernel", "debian:6.12", "--kernel", "debian:6.12"], ["given more than once"]),
        (["--baseline", "/nonexistent/run"], ["--baseline", "no such file"]),
    ],
)
def test_matrix_options_bad_input(tmp_path: Path, args: list[str], words: list[str]) -> None:
    p = cli(tmp_path, "run", "--suite", "probes", "--out", str(tmp_path / "out"), *args)
    assert_one_error(p, *words, allow_progress=True)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
