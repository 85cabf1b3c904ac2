"""vm: `harness series` judging real boots. Building a kernel per patch is the slow test
(test_slow_series.py); here each commit of a small real repository names the kernel its "build"
yields (a file `kernel`), so every row is a real QEMU boot of a real Debian kernel and the matrix
is made from what came back: 6.12 at base, a patch that "goes back" to 6.1, one that returns to
6.12. The 6.1/6.12 differences observed in test_vm_run.py must show as broke and fixed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.kernels import kbuild
from harness.paths import cache_dir
from harness.run.runner import RunRequest
from harness.series.core import Row, Step
from harness.series.series_cmd import SeriesRequest, run_row, run_series
from tests.helpers.kernels import TEST_KERNEL, TEST_KERNEL_OLD
from tests.helpers.small_repo import SmallRepo

pytestmark = pytest.mark.vm

# docs/semantics.md#odirect-pin: XFAIL (not ok) on 6.1, PASS on 6.12
CHANGES = "cow.unshare.odirect-write.base"
# docs/semantics.md#vmsplice: PASS on both
SAME = "cow.vmsplice.unmap-in-child.thp"


class KernelFileBuilder:
    """The "build" of a row is the kernel spec written in the tree."""

    def __init__(self, tree: Any) -> None:
        self.tree, self.build_dir, self.release = tree, Path("/nonexistent"), ""

    def build(self, row: Row, row_dir: Path) -> Row:
        self.kernel = (self.tree.path / "kernel").read_text().strip()
        self.release = self.kernel
        return Row(**{**row.__dict__, "build": Step.OK})


def test_series_rows_are_real_boots(tmp_path: Path) -> None:
    repo = SmallRepo(tmp_path / "tree")
    base = repo.commit("base: Debian 6.12", {"kernel": TEST_KERNEL + "\n"})
    repo.commit("go back to 6.1", {"kernel": TEST_KERNEL_OLD + "\n"})
    repo.commit("return to 6.12", {"kernel": TEST_KERNEL + "\n"})

    def parts(tree: Any, req: SeriesRequest, progress: Any) -> tuple[Any, Any]:
        b = KernelFileBuilder(tree)
        return b, lambda row, row_dir: run_row(row, b.kernel, req, row_dir, progress)

    out = tmp_path / "series"
    req = SeriesRequest(
        repo.path, f"{base}..HEAD", run=RunRequest(suites=("cow",), filters=(CHANGES, SAME)), out=out
    )
    try:
        code = run_series(req, print, parts)
    finally:  # our worktree of this one-off repository, kept in the cache per repository
        shutil.rmtree(cache_dir() / "series" / kbuild.tree_key(repo.path), ignore_errors=True)
    rec = json.loads((out / "series.json").read_text())
    print((out / "matrix.txt").read_text())
    assert code == 1
    assert [r["boot"] for r in rec["rows"]] == ["ok", "ok", "ok"]
    assert [r["tests"][CHANGES]["verdict"] for r in rec["rows"]] == ["PASS", "XFAIL", "PASS"]
    assert [r["tests"][CHANGES]["outcome"] for r in rec["rows"]] == ["ok", "not_ok", "ok"]
    assert [r["tests"][SAME]["verdict"] for r in rec["rows"]] == ["PASS", "PASS", "PASS"]
    assert rec["columns"] == [CHANGES]
    assert [(c["row"], c["mark"]) for c in rec["changes"]] == [(1, "broke"), (2, "fixed")]
    assert [(p["row"], p["column"]) for p in rec["problems"]] == [(1, CHANGES)]
    for i in range(3):  # each row is an ordinary run dir with its console log and JUnit
        run = Path(rec["rows"][i]["run_dir"])
        assert (run / "console.log").stat().st_size > 0 and (run / "junit.xml").is_file()
    assert "XFAIL (broke)" in (out / "matrix.txt").read_text()
