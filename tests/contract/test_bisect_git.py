"""git bisect driven in our own worktree (bisect_git) on a small real repository made here, with
a fake step oracle that reads the checked-out files instead of building a kernel."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from harness.bisect.bisect_git import GitSpace, GitState, Terms, parse_bisect, replay_log
from harness.bisect.bisect_loop import Bisect
from harness.bisect.core import CaseObs, Policy, RunObs, Side, Status, StepResult
from harness.errors import InputError
from tests.helpers.small_repo import ENV, commit, git

TEST = "cow.iouring-register-ok.ext4-private"


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, list[str]]:
    """c0 good; c1 harmless; c2 does not build; c3 fixes the build; c4 changes the behaviour
    (io_uring); c5 harmless. git's first pick between c0 and c5 is c2, the broken one."""
    r = tmp_path / "linux"
    r.mkdir()
    git(r, "init", "-q", "-b", "master")
    c = [
        commit(r, "initial", {"Makefile": "all:\n", "io_uring/rsrc.c": "int ok = 1;\n", "behaviour": "ok\n"})
    ]
    c.append(commit(r, "mm: fix a comment", {"mm/gup.c": "/* pins */\n"}))
    c.append(
        commit(r, "mm: rework helper (breaks the build)", {"mm/util.c": "syntax error\n", "BROKEN": "1\n"})
    )
    c.append(commit(r, "mm: fix the build", {"mm/util.c": "int x;\n", "BROKEN": None}))
    c.append(
        commit(
            r,
            "io_uring/rsrc: check file-backed VMAs again",
            {"io_uring/rsrc.c": "int ok = 0;\n", "behaviour": "not_ok\n"},
        )
    )
    c.append(commit(r, "Documentation: typo", {"Documentation/x.rst": "x\n"}))
    return r, c


class WorktreeOracle:
    """Build failure if BROKEN exists in the checkout, else the test's outcome from `behaviour`
    (not_ok also when ALSO_BAD exists). The "build" hashes every file but `behaviour` and
    Documentation/: a commit touching only those builds the same kernel. Steps on a tree with
    uncommitted changes (the revert check) are counted in `reverted`, not `calls`."""

    def __init__(self, worktree: Path, interrupt_at: int | None = None) -> None:
        self.worktree, self.interrupt_at = worktree, interrupt_at
        self.calls: list[str] = []
        self.reverted: list[str] = []

    def __call__(self, cand: str, step_dir: Path) -> StepResult:
        if self.interrupt_at is not None and len(self.calls) + 1 == self.interrupt_at:
            raise KeyboardInterrupt
        head = git(self.worktree, "rev-parse", "HEAD")
        assert head == cand, "the loop checks the candidate out before the step"
        (self.reverted if git(self.worktree, "status", "--porcelain") else self.calls).append(cand)
        if (self.worktree / "BROKEN").exists():
            return StepResult(
                Status.BUILD_FAILED, (), "mm/util.c:1:1: error: unknown type name 'syntax'", 3.0
            )
        outcome = (self.worktree / "behaviour").read_text().strip()
        if (self.worktree / "ALSO_BAD").exists():
            outcome = "not_ok"
        verdict = "PASS" if outcome == "ok" else "FAIL"
        h = hashlib.sha256()
        for name in sorted(git(self.worktree, "ls-files").split()):
            if name != "behaviour" and not name.startswith("Documentation/"):
                h.update(name.encode() + b"\0" + (self.worktree / name).read_bytes())
        return StepResult(
            Status.RAN,
            (RunObs((CaseObs(TEST, outcome, verdict),)),),
            "",
            1.0,
            2.0,
            "vmlinux:" + h.hexdigest(),
        )


def make(
    repo: Path,
    bdir: Path,
    good: str,
    bad: str,
    policy: Policy,
    interrupt_at: int | None = None,
    verify: bool = True,
) -> tuple[Bisect, WorktreeOracle]:
    space = GitSpace(repo, good, bad, policy)
    space.use_dir(bdir)
    oracle = WorktreeOracle(bdir / "worktree", interrupt_at)
    return Bisect(space, oracle, policy, bdir, progress=lambda s: None, verify=verify), oracle


def test_names_the_commit_skipping_the_broken_one_and_leaves_the_user_alone(
    repo: tuple[Path, list[str]], tmp_path: Path
) -> None:
    r, c = repo
    # The user has a bisect of their own going, and local changes.
    git(r, "bisect", "start", c[5], c[0])
    their_head, their_log = git(r, "rev-parse", "HEAD"), git(r, "bisect", "log")
    (r / "Makefile").write_text("all: local-edit\n")
    (r / "untracked.txt").write_text("mine\n")
    their_status = git(r, "status", "--porcelain")

    b, oracle = make(r, tmp_path / "b", c[0], c[5], Policy((TEST,)))
    out = b.run()

    assert out.exit_code == 0 and out.answer is not None
    assert out.answer.first == (c[4],)
    assert out.answer.extra["subject"] == "io_uring/rsrc: check file-backed VMAs again"
    assert out.answer.extra["files"] == ["behaviour", "io_uring/rsrc.c"]
    assert oracle.calls[:3] == [c[0], c[5], c[2]]  # the ends, then git's pick: the broken one
    assert len(set(oracle.calls)) == len(oracle.calls)
    # Proved: c4 reverted on c5 (the bad end) is good again, in our worktree, which is clean after.
    assert oracle.reverted == [c[5]]
    assert out.answer.extra["verification"]["status"] == "verified by revert"
    assert out.answer.extra["noop"] is False
    assert git(tmp_path / "b" / "worktree", "status", "--porcelain") == ""
    assert git(r, "rev-parse", "HEAD") == their_head
    assert git(r, "bisect", "log") == their_log
    assert git(r, "status", "--porcelain") == their_status

    bdir = tmp_path / "b"
    log = (bdir / "git-bisect.log").read_text()
    assert f"git bisect skip {c[2]}" in log and f"# first bad commit: [{c[4]}]" in log
    state = json.loads((bdir / "bisect.json").read_text())
    assert state["answer"]["commit"] == c[4] and state["answer"]["status"] == "found"
    assert [s["status"] for s in state["steps"]].count("build-failed") == 1
    summary = (bdir / "summary.txt").read_text()
    assert f"first bad: {c[4]}" in summary and "io_uring/rsrc.c" in summary
    assert f"verified by revert: reverting {c[4][:12]} on top of {c[5][:12]}" in summary
    assert state["verification"]["status"] == "verified by revert"
    assert state["verification"]["step"]["runs"][0]["cases"][0]["outcome"] == "ok"
    assert (bdir / "steps" / "revert" / "candidate.txt").is_file()
    steps = (bdir / "steps.txt").read_text()
    assert "build-failed: mm/util.c:1:1: error" in steps
    assert ET.parse(bdir / "junit.xml").getroot().find(".//testcase[@name='result']/failure") is None

    # The log replays elsewhere to the same answer.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(r), str(clone)], check=True, env=ENV)
    replayed = subprocess.run(
        ["git", "-C", str(clone), "bisect", "replay", str(bdir / "git-bisect.log")],
        capture_output=True,
        text=True,
        env={**ENV, "LC_ALL": "C"},
    )
    assert f"{c[4]} is the first bad commit" in replayed.stdout


def test_reverse_on_a_regression_is_refused(repo: tuple[Path, list[str]], tmp_path: Path) -> None:
    r, c = repo
    # With --reverse, --bad (c0) is the old end and must be bad; here it is good: refused at once.
    b, oracle = make(r, tmp_path / "b", c[5], c[0], Policy((TEST,), reverse=True))
    out = b.run()
    assert oracle.calls == [c[0]]
    assert out.exit_code == 2 and out.answer is not None
    assert out.answer.message.startswith(f"--bad {c[0][:7]}")
    assert "without --reverse" in out.answer.message


def test_reverse_names_the_fixing_commit(tmp_path: Path) -> None:
    r = tmp_path / "linux"
    r.mkdir()
    git(r, "init", "-q", "-b", "master")
    c = [commit(r, "initial", {"behaviour": "not_ok\n"})]
    for i in range(1, 7):
        c.append(commit(r, f"change {i}", {"behaviour": "ok\n" if i >= 5 else "not_ok\n", f"f{i}": "x\n"}))
    b, oracle = make(r, tmp_path / "b", c[6], c[0], Policy((TEST,), reverse=True))
    out = b.run()
    assert out.exit_code == 0 and out.answer is not None and out.answer.first == (c[5],)
    assert "first good: " + c[5] in out.text
    log = (tmp_path / "b" / "git-bisect.log").read_text()
    assert "--term-old=broken" in log and f"# first fixed commit: [{c[5]}]" in log


def test_interrupted_bisect_resumes_from_the_saved_state(
    repo: tuple[Path, list[str]], tmp_path: Path
) -> None:
    r, c = repo
    b, first = make(r, tmp_path / "b", c[0], c[5], Policy((TEST,)), interrupt_at=4)
    out = b.run()
    assert out.exit_code == 130 and len(first.calls) == 3
    b2, again = make(r, tmp_path / "b", c[0], c[5], Policy((TEST,)))
    out2 = b2.run()
    assert out2.answer is not None and out2.answer.first == (c[4],)
    assert not set(again.calls) & set(first.calls)
    assert again.reverted == [c[5]]
    # Done: a third run re-derives the answer and the proof from the state, testing nothing.
    b3, none = make(r, tmp_path / "b", c[0], c[5], Policy((TEST,)))
    out3 = b3.run()
    assert none.calls == none.reverted == []
    assert out3.answer is not None and out3.answer.extra["verification"]["status"] == "verified by revert"


def history(tmp_path: Path, steps: Sequence[tuple[str, Mapping[str, str | None]]]) -> tuple[Path, list[str]]:
    r = tmp_path / "linux"
    r.mkdir()
    git(r, "init", "-q", "-b", "master")
    c = [
        commit(r, "initial", {"Makefile": "all:\n", "io_uring/rsrc.c": "int ok = 1;\n", "behaviour": "ok\n"})
    ]
    c += [commit(r, subject, dict(files)) for subject, files in steps]
    return r, c


def test_a_revert_that_conflicts_does_not_apply(tmp_path: Path) -> None:
    r, c = history(
        tmp_path,
        [
            ("mm: unrelated", {"mm/gup.c": "x\n"}),
            ("io_uring/rsrc: the regression", {"io_uring/rsrc.c": "int ok = 0;\n", "behaviour": "not_ok\n"}),
            ("io_uring/rsrc: rename on top", {"io_uring/rsrc.c": "int ok_now = 0;\n"}),
        ],
    )
    b, oracle = make(r, tmp_path / "b", c[0], c[3], Policy((TEST,)))
    out = b.run()
    assert out.exit_code == 0 and out.answer is not None and out.answer.first == (c[2],)
    ver = out.answer.extra["verification"]
    assert ver["status"] == "revert does not apply" and "io_uring/rsrc.c" in ver["detail"]
    assert oracle.reverted == []  # nothing to build
    assert "revert does not apply" in out.text and "not verified" in out.text
    assert git(tmp_path / "b" / "worktree", "status", "--porcelain") == ""


def test_a_revert_that_does_not_restore_lowers_the_confidence(tmp_path: Path) -> None:
    # c2 makes the test bad; c4, on its own, makes it bad too: reverting c2 on c5 is still bad.
    r, c = history(
        tmp_path,
        [
            ("mm: unrelated", {"mm/gup.c": "x\n"}),
            ("io_uring/rsrc: the regression", {"io_uring/rsrc.c": "int ok = 0;\n", "behaviour": "not_ok\n"}),
            ("mm: more", {"mm/gup.c": "y\n"}),
            ("mm/gup: a second regression", {"mm/gup.c": "z\n", "ALSO_BAD": "1\n"}),
            ("Documentation: typo", {"Documentation/x.rst": "x\n"}),
        ],
    )
    b, oracle = make(r, tmp_path / "b", c[0], c[5], Policy((TEST,)))
    out = b.run()
    assert out.answer is not None and out.answer.first == (c[2],)
    assert oracle.reverted == [c[5]]
    assert out.answer.extra["verification"]["status"] == "revert does not restore"
    assert out.answer.confidence is not None and out.answer.confidence.value == 0.1
    assert "the answer is doubtful" in out.text and "revert does not restore" in out.text
    junit = ET.parse(tmp_path / "b" / "junit.xml").getroot()
    prop = junit.find(".//property[@name='bisect.verification']")
    assert prop is not None and prop.get("value") == "revert does not restore"
    # --no-verify (a new bisect dir): no revert check, the confidence is the search's own.
    b2, o2 = make(r, tmp_path / "b2", c[0], c[5], Policy((TEST,)), verify=False)
    out2 = b2.run()
    assert o2.reverted == [] and "verification" not in out2.answer.extra  # type: ignore[union-attr]
    assert (
        out2.answer is not None and out2.answer.confidence is not None and out2.answer.confidence.value == 1.0
    )


def test_a_culprit_that_builds_the_same_kernel_is_unreliable(tmp_path: Path) -> None:
    # The test turns bad at a docs-only commit (a flaky test or an environment change would):
    # its build equals its parent's, so it cannot be the cause.
    r, c = history(
        tmp_path,
        [
            ("mm: unrelated", {"mm/gup.c": "x\n"}),
            ("Documentation: mm notes", {"Documentation/mm.rst": "x\n", "behaviour": "not_ok\n"}),
            ("mm: more", {"mm/gup.c": "y\n"}),
        ],
    )
    b, oracle = make(r, tmp_path / "b", c[0], c[3], Policy((TEST,)), verify=False)
    out = b.run()
    assert out.answer is not None and out.answer.first == (c[2],)
    assert out.answer.extra["noop"] is True
    assert out.answer.confidence is not None and out.answer.confidence.value == 0.1
    assert f"unreliable: the build of {c[2][:12]} is byte-identical to its parent's" in out.text
    assert "no-op culprit" in out.answer.confidence.text


def test_bad_input(repo: tuple[Path, list[str]], tmp_path: Path) -> None:
    r, c = repo
    with pytest.raises(InputError, match="ancestor"):
        GitSpace(r, c[5], c[0], Policy((TEST,)))
    with pytest.raises(InputError, match="not a commit"):
        GitSpace(r, "no-such-rev", c[0], Policy((TEST,)))
    with pytest.raises(InputError, match="not a git repository"):
        GitSpace(tmp_path, c[0], c[5], Policy((TEST,)))
    with pytest.raises(InputError, match="inside"):
        GitSpace(r, c[0], c[5], Policy((TEST,))).use_dir(r / "harness-bisect" / "x")


def test_parse_bisect_output() -> None:
    h = "a" * 40
    assert parse_bisect(f"{h} is the first bad commit\ncommit {h}\n", "x") == GitState(None, (h,))
    assert parse_bisect(f"{h} is the first fixed commit\n", "x") == GitState(None, (h,))
    skipped = (
        "There are only 'skip'ped commits left to test.\nThe first bad commit could be any of:\n"
        f"{'b' * 40}\n{h}\nWe cannot bisect more!\n"
    )
    assert parse_bisect(skipped, "x") == GitState(None, ("b" * 40, h))
    assert parse_bisect(
        "Bisecting: 2 revisions left to test after this (roughly 1 step)\n", "c" * 40
    ) == GitState("c" * 40)


def test_replay_log_text() -> None:
    text = replay_log("N", "O", Terms.for_reverse(True), [("A", Side.OLD), ("B", None), ("C", Side.NEW)])
    assert text.splitlines() == [
        "git bisect start '--term-old=broken' '--term-new=fixed' 'N' 'O'",
        "git bisect broken A",
        "git bisect skip B",
        "git bisect fixed C",
    ]
    assert replay_log("N", "O", Terms(), []).splitlines() == ["git bisect start 'N' 'O'"]


def test_a_bare_mirror_is_enough(repo: tuple[Path, list[str]], tmp_path: Path) -> None:
    r, c = repo
    mirror = tmp_path / "mirror.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(r), str(mirror)], check=True, env=ENV)
    b, oracle = make(mirror, tmp_path / "b", c[0], c[5], Policy((TEST,)))
    out = b.run()
    assert out.answer is not None and out.answer.first == (c[4],)


def test_the_command_line_wires_it_together(
    repo: tuple[Path, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from harness import cli
    from harness.bisect import bisect_cmd

    r, c = repo
    bdir = tmp_path / "b"
    monkeypatch.setattr(bisect_cmd, "RunOracle", lambda *a: WorktreeOracle(bdir / "worktree"))
    args = ["bisect", "--src", str(r), "--good", c[0], "--bad", "master", "--test", TEST]
    assert cli.main([*args, "--out", str(bdir), "--junit", str(tmp_path / "j.xml")]) == 0
    out = capsys.readouterr().out
    assert f"first bad: {c[4]}" in out and "io_uring/rsrc.c" in out and "verified by revert" in out
    assert cli.main([*args, "--out", str(bdir), "--restart", "--no-verify"]) == 0
    assert "verified by revert" not in capsys.readouterr().out
    assert cli.main(["bisect", "--kernels", "a,b", "--test", TEST, "--no-verify"]) == 2
    assert "--no-verify goes with --src" in capsys.readouterr().err
    assert (tmp_path / "j.xml").is_file()
    state = json.loads((bdir / "bisect.json").read_text())
    assert state["identity"]["bad"] == c[5] and state["identity"]["base"] == "tinyconfig"
    assert [f.split(":")[0] for f in state["identity"]["fragments"]] == ["lean.config", "cow.config"]
    # From inside the tree, the default bisect dir would land in the user's checkout: refused.
    monkeypatch.chdir(r)
    assert cli.main(args) == 2
    assert "would be inside" in capsys.readouterr().err


def test_a_lone_bad_run_skips_the_step_as_flaky_and_the_answer_stands(tmp_path: Path) -> None:
    r, c = history(
        tmp_path,
        [(f"mm: change {i}", {f"mm/f{i}.c": "x\n"}) for i in range(1, 4)]
        + [
            ("io_uring/rsrc: the regression", {"io_uring/rsrc.c": "int ok = 0;\n", "behaviour": "not_ok\n"}),
            ("mm: after", {"mm/f5.c": "x\n"}),
        ],
    )
    policy = Policy((TEST,), runs=6)  # bad at 2 bad runs
    space = GitSpace(r, c[0], c[5], policy)
    bdir = tmp_path / "b"
    space.use_dir(bdir)
    inner = WorktreeOracle(bdir / "worktree")

    def oracle(cand: str, step_dir: Path) -> StepResult:
        one = inner(cand, step_dir)
        runs = one.runs * 6
        if cand == c[2]:  # good, but one run in six came back bad
            runs = (RunObs((CaseObs(TEST, "not_ok", "FAIL"),)),) + one.runs * 5
        return dataclasses.replace(one, runs=runs)

    out = Bisect(space, oracle, policy, bdir, progress=lambda s: None).run()
    assert out.answer is not None and out.answer.first == (c[4],)
    state = json.loads((bdir / "bisect.json").read_text())
    assert {s["candidate"]: s["decision"] for s in state["steps"]}[c[2]] == "skip"
    assert "[flaky: 1 of 6 runs bad, below 2]" in (bdir / "steps.txt").read_text()
    conf = out.answer.confidence
    assert conf is not None and 0.5 < conf.value < 1.0
    assert "1 step(s) skipped as flaky" in conf.text and "verified by revert" in conf.text
