"""`harness series` end to end on a small real git repository: real git am in our worktree, the
real Builder (log slicing, warnings ledger) over a fake `make`, a fake guest that reads what the
tree says the tests do. The real build, boot and tests are tests/slow/test_slow_series.py."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness import cli, signals
from harness.errors import BuildError, InputError
from harness.kernels import kbuild
from harness.model import Outcome, Verdict
from harness.series import series_cmd
from harness.series.core import Cell, Row, Step
from harness.series.series_cmd import Builder, SeriesRequest, run_series
from tests.helpers.small_repo import BASE_FILES, SmallRepo, behaviour

OUTCOMES = {
    "ok": (Outcome.OK, Verdict.PASS),
    "not_ok": (Outcome.NOT_OK, Verdict.FAIL),
    "skip": (Outcome.SKIP, Verdict.SKIP),
}


class FakeMake:
    """Stands in for kbuild.build: appends a make section to build.log as kbuild does, "compiles"
    build.c when it changed, and fails on "#error"."""

    def __init__(self) -> None:
        self.calls: list[Path] = []
        self.seen: dict[Path, float] = {}

    def __call__(self, req: kbuild.BuildRequest, progress: Any = None) -> kbuild.BuildResult:
        assert req.out is not None
        req.out.mkdir(parents=True, exist_ok=True)
        self.calls.append(req.src)
        src = req.src / "build.c"
        lines = ["", "### make bzImage: make -C ..."]
        if src.stat().st_mtime != self.seen.get(req.out):
            self.seen[req.out] = src.stat().st_mtime
            lines.append("  CC      build.o")
            for n, line in enumerate(src.read_text().splitlines(), 1):
                if line.startswith("warn: "):
                    lines.append(f"{req.src}/build.c:{n}:5: warning: {line[6:]}")
                if line.startswith("#error"):  # with gcc's multi-byte quotes
                    lines.append(f"{req.src}/build.c:{n}:2: error: implicit declaration of ‘{line[7:]}’")
        with open(req.out / kbuild.LOG, "a") as f:
            f.write("\n".join(lines) + "\n")
        if "#error" in src.read_text():
            why = src.read_text().split("#error ")[1].splitlines()[0]
            raise BuildError(f"make bzImage failed: {src}: error: {why} (log: {req.out / kbuild.LOG})")
        return kbuild.BuildResult(req.out, req.out / "bzImage", "6.12.0-fake", False, False, 0.1)


def fake_guest(tree_path: Path) -> series_cmd.RowRunner:
    def run(row: Row, row_dir: Path) -> Row:
        text = (tree_path / "behaviour").read_text()
        if "panic-at-boot" in text:
            return Row(**{**row.__dict__, "boot": Step.FAILED, "boot_error": "Kernel panic - not syncing"})
        tests = {}
        for line in text.splitlines():
            tid, _, what = line.partition("=")
            outcome, verdict = OUTCOMES[what]
            tests[tid] = Cell(verdict, outcome)
        return Row(**{**row.__dict__, "boot": Step.OK, "tests": tests, "run_dir": str(row_dir)})

    return run


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    make = FakeMake()
    monkeypatch.setattr(kbuild, "build", make)
    repo = SmallRepo(tmp_path / "linux")
    base = repo.commit("base: a small tree", BASE_FILES)
    holder: dict[str, Any] = {}

    def parts(tree: Any, req: SeriesRequest, progress: Any) -> tuple[Any, Any]:
        holder["tree"] = tree
        return Builder(tree, req, progress), fake_guest(tree.path)

    return {"repo": repo, "base": base, "make": make, "parts": parts, "holder": holder, "tmp": tmp_path}


def _series(
    env: dict[str, Any], patches: Sequence[tuple[str, Mapping[str, str | None]]], cover: str = ""
) -> Path:
    repo: SmallRepo = env["repo"]
    for subject, files in patches:
        repo.commit(subject, files)
    out: Path = env["tmp"] / "outgoing"
    repo.format_patch(f"{env['base']}..HEAD", out, cover)
    repo.git("reset", "-q", "--hard", env["base"])  # the developer's tree: the patches are only in files
    return out


def _run(env: dict[str, Any], what: Path | str, **kw: Any) -> tuple[int, dict[str, Any], Path]:
    out = env["tmp"] / kw.pop("out_name", "series")
    base = kw.pop("base", env["base"])
    req = SeriesRequest(env["repo"].path, str(what), base, out=out, **kw)
    code = run_series(req, lambda s: None, env["parts"])
    return code, json.loads((out / "series.json").read_text()), out


TYPICAL = [
    ("mm: clean", {"README": "a small tree\nmore words\n"}),
    (
        "mm: does not build",
        {"build.c": "int main(void) { return 0; }\nwarn: old warning [-Wold]\n#error use of undeclared x\n"},
    ),
    (
        "mm: builds, breaks cow.a",
        {
            "build.c": "int main(void) { return 0; }\nwarn: old warning [-Wold]\nwarn: unused x [-Wunused]\n",
            "behaviour": behaviour(cow_a="not_ok"),
        },
    ),
    ("mm: fixes cow.a and cow.c", {"behaviour": behaviour(cow_c="ok")}),
]


def test_the_typical_series_matrix(env: dict[str, Any]) -> None:
    code, rec, out = _run(env, _series(env, TYPICAL, cover="mm: a series"))
    assert code == 1
    rows = rec["rows"]
    out = out.resolve()
    assert [r["label"] for r in rows] == ["base", "1", "2", "3", "4"]
    assert [r["build"] for r in rows] == ["ok", "ok", "failed", "ok", "ok"]
    assert [r["boot"] for r in rows] == ["ok", "ok", "not run", "ok", "ok"]
    assert (
        rows[2]["build_error"]
        == f"make bzImage failed: build.c: error: use of undeclared x (log: {out}/rows/02/build.log)"
    )
    # New warnings: only the one patch 3 added (the old one was known from the base build).
    assert [r["new_warnings"] for r in rows] == [[], [], [], ["build.c:3: warning: unused x [-Wunused]"], []]
    assert rec["columns"] == ["cow.a", "cow.c"]
    marks = {(c["row"], c["column"]): c["mark"] for c in rec["changes"]}
    assert marks == {
        (2, "build"): "broke",
        (3, "build"): "fixed",
        (3, "cow.a"): "broke",
        (4, "cow.a"): "fixed",
        (4, "cow.c"): "fixed",
    }
    assert [(p["row"], p["column"]) for p in rec["problems"]] == [(2, "build"), (3, "cow.a")]
    assert rec["title"] == "mm: a series" and rec["finished"] is True

    table = (out / "matrix.txt").read_text()
    lines = table.splitlines()
    assert lines[1].split() == ["commit", "subject", "apply", "build", "boot", "t1", "t2", "build+run"]
    assert lines[4].split()[-6:-1] == ["FAILED", "(broke)", "-", "-", "-"] and lines[4].split()[0] == "2"
    assert "FAIL (broke)" in lines[5] and "ok +1w (fixed)" in lines[5]
    assert "t1 = cow.a" in table and "t2 = cow.c" in table
    assert "problem: patch 3: cow.a: broken by this patch: PASS -> FAIL" in table
    md = (out / "series.md").read_text()
    assert "| 4 |" in md and "PASS (fixed)" in md and "Tested on 6.12.0-fake" in md

    suites = ET.parse(out / "junit.xml").getroot().findall("testsuite")
    assert [s.get("name", "").split()[:2] for s in suites] == [
        ["00", "base"],
        ["01", "1"],
        ["02", "2"],
        ["03", "3"],
        ["04", "4"],
    ]
    failures = [
        (s.get("name", "").split()[1], c.get("name"))
        for s in suites
        for c in s.findall("testcase")
        if c.find("failure") is not None
    ]
    assert failures == [("2", "build"), ("3", "cow.a")]
    # Each patch's build log is kept, whole (sliced in bytes: the error above has UTF-8 quotes),
    # and the base build recompiled what the series touches.
    for i in range(5):
        assert (out / "rows" / f"{i:02d}" / "build.log").read_text().startswith("\n### make bzImage"), i
    assert "build.c:2:5: warning: old warning" in (out / "rows" / "00" / "build.log").read_text()
    assert (out / "rows" / "04" / "build.log").is_file() and (out / "patches" / "0001.msg").is_file()


def test_a_clean_series_exits_0_and_a_range_works_the_same(env: dict[str, Any]) -> None:
    repo: SmallRepo = env["repo"]
    repo.commit("mm: one", {"README": "x\n"})
    repo.commit("mm: fix cow.c", {"behaviour": behaviour(cow_c="ok")})
    code, rec, out = _run(env, f"{env['base'][:10]}..HEAD", base=None)
    assert code == 0 and rec["kind"] == "range" and rec["problems"] == []
    assert [r["commit"] for r in rec["rows"]] == [
        env["base"],
        repo.git("rev-parse", "HEAD~1"),
        repo.git("rev-parse", "HEAD"),
    ]
    assert rec["columns"] == ["cow.c"] and "apply" not in (out / "matrix.txt").read_text().splitlines()[1]
    assert "No patch broke the build, the boot or a test." in (out / "series.md").read_text()


def test_a_patch_that_does_not_apply_stops_the_series(env: dict[str, Any]) -> None:
    patches = _series(
        env,
        [
            ("mm: one", {"README": "one\n"}),
            ("mm: two", {"README": "two\n"}),
            ("mm: three", {"README": "three\n"}),
        ],
    )
    (patches / "0001-mm-one.patch").unlink()  # patch two's context is now missing
    code, rec, out = _run(env, patches)
    assert code == 1
    assert [r["apply"] for r in rec["rows"]] == ["ok", "failed", "not run"]
    assert "patch does not apply" in rec["rows"][1]["apply_message"]
    assert rec["rows"][2]["note"] == "not applied: patch 1 did not apply"
    assert rec["problems"][0]["text"].startswith("does not apply: error:")


def test_stop_on_first_and_only_last(env: dict[str, Any]) -> None:
    patches = _series(env, TYPICAL)
    code, rec, _ = _run(env, patches, stop_on_first=True, out_name="s1")
    assert code == 1
    assert [r["build"] for r in rec["rows"]] == ["ok", "ok", "failed", "not run", "not run"]
    assert rec["rows"][3]["note"] == "not tested: --stop-on-first after patch 2"
    env["make"].calls.clear()
    code, rec, _ = _run(env, patches, only_last=True, out_name="s2")
    assert [r["build"] for r in rec["rows"]] == ["ok", "not run", "not run", "not run", "ok"]
    assert [r["apply"] for r in rec["rows"]] == ["ok", "ok", "ok", "ok", "ok"]
    assert len(env["make"].calls) == 2
    # The tip fixed cow.c and has cow.a back: nothing a patch row broke.
    assert code == 0 and rec["columns"] == ["cow.c"]


def test_a_patch_that_does_not_boot(env: dict[str, Any]) -> None:
    code, rec, _ = _run(
        env,
        _series(
            env, [("mm: panics", {"behaviour": "panic-at-boot\n"}), ("mm: back", {"behaviour": behaviour()})]
        ),
    )
    assert code == 1 and [r["boot"] for r in rec["rows"]] == ["ok", "failed", "ok"]
    assert {(c["row"], c["column"]): c["mark"] for c in rec["changes"]} == {
        (1, "boot"): "broke",
        (2, "boot"): "fixed",
    }


def test_base_that_does_not_build_is_bad_input(env: dict[str, Any]) -> None:
    repo: SmallRepo = env["repo"]
    base = repo.commit("base: broken", {"build.c": "#error base is broken\n"})
    patches = _series(env, [("mm: one", {"README": "x\n"})])
    with pytest.raises(InputError, match="does not build: .*base is broken"):
        _run(env, patches, base=base)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupted_series_writes_what_it_has(env: dict[str, Any], how: str) -> None:
    patches = _series(env, TYPICAL)
    real = env["parts"]

    def parts(tree: Any, req: SeriesRequest, progress: Any) -> tuple[Any, Any]:
        builder, guest = real(tree, req, progress)

        def run(row: Row, row_dir: Path) -> Row:
            if row.index == 3:
                if how == "sigterm":  # a CI job cancelled
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)
                raise KeyboardInterrupt
            done: Row = guest(row, row_dir)
            return done

        return builder, run

    env["parts"] = parts
    with signals.sigterm_as_interrupt():  # as the CLI runs every command
        code, rec, out = _run(env, patches)
    assert code == (143 if how == "sigterm" else 130) and rec["finished"] is False
    assert [r["build"] for r in rec["rows"]] == ["ok", "ok", "failed", "not run", "not run"]
    assert rec["rows"][3]["note"] == "not reached: interrupted"
    assert ET.parse(out / "junit.xml").getroot().findall("testsuite")


def test_two_series_on_one_tree_do_not_share_the_worktree(env: dict[str, Any]) -> None:
    patches = _series(env, [("mm: one", {"README": "x\n"})])
    entered, release = threading.Event(), threading.Event()
    real = env["parts"]

    def slow_parts(tree: Any, req: SeriesRequest, progress: Any) -> tuple[Any, Any]:
        builder, guest = real(tree, req, progress)

        def run(row: Row, row_dir: Path) -> Row:
            entered.set()
            release.wait(60)
            done: Row = guest(row, row_dir)
            return done

        return builder, run

    results: list[Any] = []

    def first() -> None:
        try:
            results.append(
                run_series(
                    SeriesRequest(env["repo"].path, str(patches), env["base"], out=env["tmp"] / "a"),
                    lambda s: None,
                    slow_parts,
                )
            )
        except BaseException as e:  # shown by the assert below
            results.append(e)
            entered.set()

    t = threading.Thread(target=first)
    t.start()
    try:
        assert entered.wait(60) and not results, results
        with pytest.raises(InputError, match="another harness series is using"):
            _run(env, patches, out_name="b")
    finally:
        release.set()
        t.join()
    assert results == [0]


def test_cli_bad_input_is_exit_2(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    empty = env["tmp"] / "empty.mbox"
    empty.write_text("")
    cases = [
        ["series", "--src", str(env["repo"].path), "--base", env["base"], str(empty)],
        ["series", "--src", str(env["repo"].path), "--base", "v9.9", str(env["tmp"])],
        ["series", "--src", str(env["tmp"] / "nowhere"), "HEAD~1..HEAD"],
        ["series", "--src", str(env["repo"].path), "--suite", "nosuch", "HEAD..HEAD"],
        ["series", "--src", str(env["repo"].path), "--stop-on-first", "--only-last", "HEAD..HEAD"],
        ["series", "--src", str(env["repo"].path), "--filter", "cow.no-such-test*", "HEAD..HEAD"],
        ["series", "--src", str(env["repo"].path), "--suite", "kselftest:../x", "HEAD..HEAD"],
        ["series", "--src", str(env["repo"].path), "--url-base", "ci.example.org/x", "HEAD..HEAD"],
    ]
    for argv in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("harness: error: ") and "\n" not in err and "Traceback" not in err, err


# A stand-in for the kernel's scripts/checkpatch.pl (real perl, run as the real one is): an
# added line with BADSTYLE is an error, one with TODO a warning; its "total:" line as checkpatch
# prints it without --strict (no checks count).
CHECKPATCH = r"""#!/usr/bin/perl
my ($e, $w, $n) = (0, 0, 0);
while (my $l = <STDIN>) {
    $n++;
    next unless $l =~ /^\+[^+]/;
    if ($l =~ /BADSTYLE/) { $e++; print "ERROR: do not write BADSTYLE\n#$n: FILE: build.c:2:\n\n"; }
    if ($l =~ /TODO/) { $w++; print "WARNING: a TODO is left in\n#$n: FILE: build.c:3:\n\n"; }
}
print "total: $e errors, $w warnings, $n lines checked\n";
exit($e ? 1 : 0);
"""


def fake_w1(req: kbuild.BuildRequest, sources: list[str]) -> str:
    """`make W=1` of build.c: its "warn:" lines and its "w1:" lines (warnings only W=1 shows)."""
    out = []
    if "build.c" in sources:
        for n, line in enumerate((req.src / "build.c").read_text().splitlines(), 1):
            for prefix in ("warn: ", "w1: "):
                if line.startswith(prefix):
                    out.append(f"{req.src}/build.c:{n}:5: warning: {line[len(prefix) :]}")
    return "\n".join(out) + "\n"


def test_checkpatch_w1_strict_and_patchwork_checks(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kbuild, "compile_w1", fake_w1)
    env["base"] = env["repo"].commit("scripts: checkpatch", {"scripts/checkpatch.pl": CHECKPATCH})
    body = "int main(void) { return 0; }\nwarn: old warning [-Wold]\n"
    outgoing = _series(
        env,
        [
            ("mm: clean", {"README": "a small tree\nmore words\n"}),
            ("mm: style", {"build.c": body + "int BADSTYLE;\nw1: declaration shadows x [-Wshadow]\n"}),
            (
                "mm: todo",
                {"build.c": body + "int ok;\n// TODO later\nw1: declaration shadows x [-Wshadow]\n"},
            ),
        ],
    )
    code, data, out = _run(env, outgoing, w1=True, url_base="https://ci.example.org/runs/7/")
    assert code == 0  # a checkpatch error is reported, but fails the series only with --strict
    rows = data["rows"]
    assert rows[0]["checkpatch"] is None and rows[0]["w1_after"] == 1  # the base: build.c's one warning
    assert rows[1]["checkpatch"]["errors"] == 0 and rows[1]["w1_after"] is None  # no C file touched
    cp = rows[2]["checkpatch"]
    assert (cp["errors"], cp["warnings"], cp["checks"]) == (1, 0, 0)
    assert cp["lines"] == ["ERROR: do not write BADSTYLE"]
    assert (rows[2]["w1_before"], rows[2]["w1_after"]) == (1, 2)
    assert rows[2]["w1_new"] == ["build.c:4: warning: declaration shadows x [-Wshadow]"]
    assert (
        rows[3]["checkpatch"]["warnings"],
        rows[3]["w1_before"],
        rows[3]["w1_after"],
        rows[3]["w1_new"],
    ) == (1, 2, 2, [])
    assert {
        "row": 2,
        "column": "checkpatch",
        "text": "1 checkpatch error(s): ERROR: do not write BADSTYLE",
        "soft": True,
    } in data["problems"]
    assert [(c["patch"], c["state"], c["context"], c["target_url"]) for c in data["checks"]] == [
        (1, "success", "harness-series", "https://ci.example.org/runs/7/rows/01/"),
        (2, "warning", "harness-series", "https://ci.example.org/runs/7/rows/02/"),
        (3, "warning", "harness-series", "https://ci.example.org/runs/7/rows/03/"),
    ]
    assert (
        data["checks"][1]["description"]
        == "checkpatch 1 error(s), 0 warning(s), 0 check(s); 1 new W=1 warning(s)"
    )
    matrix = (out / "matrix.txt").read_text()
    print(matrix)
    assert matrix.splitlines()[1].split() == [
        "commit",
        "subject",
        "apply",
        "checkpatch",
        "build",
        "W=1",
        "boot",
        "build+run",
    ]
    assert "1E" in matrix and "1W" in matrix and "1->2 +1" in matrix and "2->2" in matrix
    assert "checkpatch 2: ERROR: do not write BADSTYLE" in matrix
    assert "new W=1 warning in 2: build.c:4: warning: declaration shadows x [-Wshadow]" in matrix
    assert "(reported; fails the series with --strict)" in matrix
    md = (out / "series.md").read_text()
    assert "| checkpatch |" in md and "| W=1 |" in md and "1->2 +1" in md
    suites = ET.parse(out / "junit.xml").getroot()
    assert suites.find(".//testcase[@name='checkpatch']/failure") is None

    code, data, out = _run(env, outgoing, out_name="strict", strict=True)
    assert code == 1 and data["exit_code"] == 1
    assert [c["state"] for c in data["checks"]] == ["success", "fail", "warning"]
    assert (
        data["checks"][1]["description"] == "checkpatch: 1 checkpatch error(s): ERROR: do not write BADSTYLE"
    )
    assert data["checks"][0]["target_url"] is None
    assert rows[1]["w1_after"] is None and data["rows"][2]["w1_after"] is None  # no --w1
    suites = ET.parse(out / "junit.xml").getroot()
    assert len(suites.findall(".//testcase[@name='checkpatch']/failure")) == 1
