"""slow: `harness bisect --src` on a real kernel history, as a developer would leave it running.

A bare git repository is made from the Debian 6.12 source tree (the cached tree is only read),
and five commits go on top of it:

    c1  mm/gup.c: a comment                                     (builds, behaviour unchanged)
    c2  mm/util.c: a use of an undeclared symbol                (does not build)
    c3  mm/util.c: fixed again                                  (builds, behaviour unchanged)
    c4  io_uring/rsrc.c: refuse file-backed buffers that are neither shmem nor hugetlbfs with
        EOPNOTSUPP, as io_uring did before 6.5 (34ed8d0dcd69 delegated that check to GUP)
    c5  Documentation: a new file                               (no code)

`harness bisect --src REPO --good c0 --bad c5 --test cow.iouring-register-ok.ext4-private`
must name c4 (subject, files), skip c2 as a build failure (git picks it first: it is the
midpoint), build only once from scratch (one configure, later builds incremental in the kept
build dir), prove the answer by reverting c4 on c5 ("verified by revert") and write the record
and a replayable git bisect log. About 15-20 min for the first
build at -j2 (cold ccache), then a few minutes per step; run by ci/nightly.sh.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness import cli
from harness.kernels import sources
from tests.helpers.kernel_history import Repo, objects_per_build

pytestmark = [pytest.mark.slow, pytest.mark.vm]
TEST = "cow.iouring-register-ok.ext4-private"

RSRC_ANCHOR = "\tret = -ENOMEM;\n\tpages = io_pin_pages((unsigned long) iov->iov_base, iov->iov_len,\n"
RSRC_CHECK = """\t/*
\t * Refuse file-backed buffers that are neither shmem nor hugetlbfs, as
\t * io_uring did before it left that check to GUP.
\t */
\t{
\t\tstruct vm_area_struct *vma;
\t\tbool refuse;

\t\tmmap_read_lock(current->mm);
\t\tvma = vma_lookup(current->mm, (unsigned long) iov->iov_base);
\t\trefuse = vma && vma->vm_file && !vma_is_shmem(vma) &&
\t\t\t !is_file_hugepages(vma->vm_file);
\t\tmmap_read_unlock(current->mm);
\t\tif (refuse)
\t\t\treturn -EOPNOTSUPP;
\t}

"""


def test_bisect_a_kernel_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = sources.fetch("debian:6.12").root
    repo = Repo(tmp_path / "linux.git")
    c = [repo.import_tree(tree)]
    gup, util, rsrc = (repo.show("HEAD", n) for n in ("mm/gup.c", "mm/util.c", "io_uring/rsrc.c"))
    assert rsrc.count(RSRC_ANCHOR) == 1
    c.append(
        repo.commit(
            "mm/gup: comment on FOLL_PIN", {"mm/gup.c": gup + "/* harness bisect test: comment only */\n"}
        )
    )
    c.append(
        repo.commit(
            "mm/util: add a helper (does not build)",
            {"mm/util.c": util + "int harness_bisect_broken(void) { return harness_undeclared; }\n"},
        )
    )
    c.append(repo.commit("mm/util: fix the build", {"mm/util.c": util}))
    c.append(
        repo.commit(
            "io_uring/rsrc: refuse non-shmem file-backed buffers again",
            {"io_uring/rsrc.c": rsrc.replace(RSRC_ANCHOR, RSRC_CHECK + RSRC_ANCHOR)},
        )
    )
    c.append(
        repo.commit("Documentation: note on bisecting", {"Documentation/mm/harness-bisect.rst": "Bisect.\n"})
    )

    out = tmp_path / "bisect"
    code = cli.main(
        [
            "bisect",
            "--src",
            str(repo.path),
            "--good",
            c[0],
            "--bad",
            c[5],
            "--test",
            TEST,
            "--out",
            str(out),
            "-j",
            str(os.cpu_count() or 2),
            "--junit",
            str(tmp_path / "bisect.xml"),
        ]
    )
    printed = capsys.readouterr().out
    print(printed)  # the step log and the answer, in the nightly log
    assert code == 0, printed[-3000:]

    state = json.loads((out / "bisect.json").read_text())
    ans = state["answer"]
    assert ans["status"] == "found" and ans["first"] == [c[4]] and ans["commit"] == c[4]
    assert ans["subject"] == "io_uring/rsrc: refuse non-shmem file-backed buffers again"
    assert ans["files"] == ["io_uring/rsrc.c"]
    by_rev = {s["candidate"]: s for s in state["steps"]}
    assert by_rev[c[2]]["status"] == "build-failed" and by_rev[c[2]]["decision"] == "skip"
    assert "harness_undeclared" in by_rev[c[2]]["detail"]
    assert by_rev[c[0]]["decision"] == "good" and by_rev[c[5]]["decision"] == "bad"
    assert by_rev[c[4]]["decision"] == "bad"
    assert by_rev[c[4]]["runs"][0]["cases"][0]["outcome"] == "not_ok"
    assert state["steps"][2]["candidate"] == c[2]  # git's first pick was the broken commit

    # One configuration, one build from scratch: every later build is incremental (counted in
    # objects compiled, not seconds: this machine is shared).
    build_log = (out / "build" / "build.log").read_text()
    assert build_log.count("### make tinyconfig") == 1
    compiled = objects_per_build(build_log)
    assert compiled[0] > 1000 and max(compiled[1:]) < 100, compiled

    log = (out / "git-bisect.log").read_text()
    assert f"git bisect skip {c[2]}" in log and f"# first bad commit: [{c[4]}]" in log
    summary = (out / "summary.txt").read_text()
    assert f"first bad: {c[4]}" in summary

    # Proved: c4 reverted on c5 builds (incrementally) and the test is ok again; c4's vmlinux
    # differs from c3's (the reproducible builds make that comparison meaningful).
    assert state["verification"]["status"] == "verified by revert", state["verification"]
    assert state["verification"]["step"]["runs"][0]["cases"][0]["outcome"] == "ok"
    assert f"verified by revert: reverting {c[4][:12]}" in summary
    assert ans["noop"] is False and ans["build_hash"].startswith("vmlinux:")
    if c[1] in by_rev:  # a comment at the end of mm/gup.c: the reproducible build is the same
        assert by_rev[c[1]]["build_hash"] == by_rev[c[0]]["build_hash"]
    print(
        f"revert check: build {state['verification']['step']['prepare_s']}s + "
        f"tests {state['verification']['step']['run_s']}s"
    )
