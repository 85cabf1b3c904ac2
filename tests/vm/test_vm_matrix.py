"""vm tests: the nightly path for real. A kernel matrix over Debian 6.12 and 6.1 with -j 2 (a
few dozen cases each), run twice, the second against the first as --baseline; the comparison,
the HTML page (screenshot checked in headless chromium) and the KCIDB JSON (validated with
kcidb-io) of a real run. And --repeat with --shard on real guests."""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.report import htmlreport, resultset
from harness.run import matrix
from harness.suites import registry as suites
from tests.helpers.cli_run import Run, harness
from tests.helpers.kernels import TEST_KERNEL, TEST_KERNEL_OLD

pytestmark = pytest.mark.vm
# The unshare cases on base pages and PMD THPs (the matrix of memory types is bigger).
UNSHARE = ["--filter", "cow.unshare.*.base", "--filter", "cow.unshare.*.thp"]
# the vmsplice unmap cases but the mTHP and memfd forms (the default kernel's full run has those)
FILTERS = ["--filter", "cow.vmsplice.unmap-in-child.[!m]*", *UNSHARE]


def _cases_per_kernel() -> int:
    globs = FILTERS[1::2]
    ids = [i for p in suites.programs(["cow"]) for i in suites.list_ids(p)]
    return sum(1 for i in ids if any(fnmatch.fnmatchcase(i, g) for g in globs))


CASES = 2 * _cases_per_kernel()  # two kernels


def matrix_run(out: Path, *extra: str) -> Run:
    p = harness(
        "run",
        "--out",
        str(out),
        "--kernel",
        TEST_KERNEL,
        "--kernel",
        TEST_KERNEL_OLD,
        "-j",
        "2",
        *FILTERS,
        *extra,
    )
    return Run(p.returncode, out, p.stdout, p.stderr)


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    base = tmp_path_factory.mktemp("nightly")
    first = matrix_run(base / "night1")
    second = matrix_run(
        base / "night2", "--baseline", str(base / "night1"), "--junit", str(base / "junit.xml")
    )
    return first, second


def test_both_nights_pass_and_nothing_regressed(nights: tuple[Run, Run]) -> None:
    first, second = nights
    assert first.rc == 0, first.stderr[-3000:]
    assert second.rc == 0, second.stderr[-3000:]
    assert "compare: 0 regression, 0 fixed, 0 still failing, 0 flaky" in second.stdout
    cmp = json.loads((second.out / "compare.json").read_text())
    assert cmp["regressions"] == 0 and cmp["counts"]["unchanged"] + cmp["counts"]["known"] == CASES
    p = harness("compare", str(first.out), str(second.out))
    assert p.returncode == 0 and p.stdout.rstrip().endswith(
        "0 new, 0 removed, " + f"{cmp['counts']['unchanged']} unchanged"
    )


def test_the_matrix_dir_holds_both_kernels_and_their_runs(nights: tuple[Run, Run]) -> None:
    run = nights[1]
    m = json.loads((run.out / "matrix.json").read_text())
    assert [k["label"] for k in m["kernels"]] == [TEST_KERNEL, TEST_KERNEL_OLD] and m["jobs"] == 2
    assert all(r["exit_code"] == 0 for k in m["kernels"] for r in k["runs"])
    for k in m["kernels"]:
        sub = run.out / k["runs"][0]["dir"]
        for name in (
            "console.log",
            "results.jsonl",
            "junit.xml",
            "fingerprint.json",
            "report.html",
            "kcidb.json",
        ):
            assert (sub / name).stat().st_size > 0, (sub, name)
    rs = resultset.load(run.out)
    v = {c.key: c.verdict.value for c in rs.cases}
    assert len(v) == CASES
    # what differs between the kernels (test_vm_run.DIFFERENCES), seen through the matrix
    assert v[(TEST_KERNEL_OLD, "cow.unshare.odirect-write.base")] == "XFAIL"
    assert v[(TEST_KERNEL, "cow.unshare.odirect-write.base")] == "PASS"
    assert v[(TEST_KERNEL_OLD, "cow.vmsplice.unmap-in-child.hugetlb-2m")] == "XFAIL"
    root = ET.parse(run.out / "junit.xml").getroot()
    assert len(list(root.iter("testcase"))) == CASES
    assert (run.out.parent / "junit.xml").read_text() == (run.out / "junit.xml").read_text()
    # both guests ran at the same time: each started before the other finished
    spans = []
    for k in m["kernels"]:
        fp = json.loads((run.out / k["fingerprint"]).read_text())
        assert fp["machine"]["accel"] in ("kvm", "tcg")
        spans.append(k["runs"][0]["elapsed_s"])
    assert m["total_s"] < sum(spans)


def test_the_page_of_a_real_run_renders(nights: tuple[Run, Run], tmp_path: Path) -> None:
    from tests.contract.test_browser import CHROMIUM, dominant, screenshot
    from tests.helpers import pngread

    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium; ci/setup.sh does)")
    for run, name in ((nights[1], "report"), (nights[1], "compare")):
        page = (run.out / f"{name}.html").read_text()
        w, h, rows = screenshot(page, tmp_path, name)
        assert (w, h) == (1280, 900)
        assert pngread.near(dominant(rows, 5, 60), pngread.hex_rgb(htmlreport.BANNER_OK)), name


def test_the_kcidb_json_of_a_real_run_validates(nights: tuple[Run, Run]) -> None:
    kcidb_io = pytest.importorskip("kcidb_io", reason="kcidb-io not installed (pip install -e '.[test]')")
    doc = json.loads((nights[1].out / "kcidb.json").read_text())
    kcidb_io.schema.V4_0.validate_exactly(doc)
    kcidb_io.schema.LATEST.validate(doc)
    assert len(doc["tests"]) == CASES and len(doc["builds"]) == 2


def test_repeat_and_shard_on_real_guests(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    p = harness(
        "run",
        "--out",
        str(out),
        "--kernel",
        TEST_KERNEL,
        "--repeat",
        "2",
        "-j",
        "2",
        "--shard",
        "1/2",
        *UNSHARE,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    rs = resultset.load(out)
    ids = [c.id for c in rs.cases]
    all_unshare = [
        json.loads(line)["id"]
        for line in (out / TEST_KERNEL.replace(":", "-") / "r1" / "results.jsonl").read_text().splitlines()
    ]
    assert ids == all_unshare and 0 < len(ids) < 10
    assert all(matrix.shard_of(i, 2) == 1 for i in ids)
    assert all(c.runs == 2 and c.pass_rate == 1.0 and c.verdict.value != "FLAKY" for c in rs.cases)


def test_ctrl_c_stops_every_guest_and_still_reports_every_case(tmp_path: Path) -> None:
    """SIGINT to the matrix process only (as a CI cancel does): one guest is running a program,
    the other may still be booting. Exit 130, both runs' reports complete, nothing lost."""
    import signal

    out = tmp_path / "m"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            "--out",
            str(out),
            "--kernel",
            TEST_KERNEL,
            "--kernel",
            TEST_KERNEL_OLD,
            "-j",
            "2",
            *UNSHARE,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stderr is not None
    for line in p.stderr:
        if "running cow_" in line:
            break
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    rs = resultset.load(out)
    assert len(rs.cases) == 20  # 10 cases x 2 kernels, every one reported
    assert any("interrupted" in c.reason for c in rs.cases)
    assert json.loads((out / "matrix.json").read_text())["interrupted"] is True
    assert ET.parse(out / "junit.xml").getroot().find("testsuite") is not None
    assert not list(out.glob("*/r1/scratch-*.img"))  # the runs' finally paths ran
