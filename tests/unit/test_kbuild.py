"""harness.kernels.kbuild and harness.kernels.sources without building anything: build dir keying, error line
extraction, staleness, what `harness run --kernel DIR` boots, source specs and the cache."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.kernels import kbuild, sources
from harness.model import Expect
from harness.suites import kselftest

LOG = """\

### make olddefconfig: make -C /src O=/b olddefconfig
#
# configuration written to .config
#

### make bzImage: make -C /src O=/b -j2 bzImage
  CC      mm/memory.o
mm/memory.c: In function 'do_wp_page':
mm/memory.c:3600:9: error: 'foo' undeclared (first use in this function)
mm/memory.c:3601:9: error: second error
make[3]: *** [scripts/Makefile.build:229: mm/memory.o] Error 1
"""


def test_first_error_is_the_compiler_error_of_the_last_step() -> None:
    assert (
        kbuild.first_error(LOG, "make bzImage")
        == "mm/memory.c:3600:9: error: 'foo' undeclared (first use in this function)"
    )
    assert (
        kbuild.first_error("make: *** No rule to make target 'bzImagex'.  Stop.\n")
        == "make: *** No rule to make target 'bzImagex'.  Stop."
    )
    assert kbuild.first_error("just\nsome output\n") == "some output"


def _tree(root: Path) -> Path:
    for rel in ("Makefile", "Kconfig", "mm/memory.c"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x\n")
    return root


def test_build_dir_is_per_tree_and_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a, b = _tree(tmp_path / "a" / "linux"), _tree(tmp_path / "b" / "linux")
    frags = (Path("kernels/lean.config"), Path("kernels/cow.config"))
    da = kbuild.default_build_dir(a, "tinyconfig", frags)
    assert da.name == "tinyconfig+lean+cow" and da.parent.name.startswith("linux-")
    assert da.is_relative_to(tmp_path / "cache" / "harness" / "builds")
    assert kbuild.default_build_dir(a, "tinyconfig", frags) == da  # stable: incremental
    assert kbuild.default_build_dir(b, "tinyconfig", frags).parent != da.parent  # per tree
    assert kbuild.default_build_dir(a, "defconfig", frags[:1]).name == "defconfig+lean"


def test_validate_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a kernel source tree"):
        kbuild.build(kbuild.BuildRequest(tmp_path))
    tree = _tree(tmp_path / "linux")
    with pytest.raises(InputError, match="--fragment .*no such file"):
        kbuild.build(kbuild.BuildRequest(tree, (tmp_path / "nope.config",)))
    with pytest.raises(InputError, match="--base nonsense"):
        kbuild.build(kbuild.BuildRequest(tree, (), "nonsense"))


def _built(bd: Path, src: Path, mtime: float) -> None:
    bz = bd / "arch" / "x86" / "boot" / "bzImage"
    bz.parent.mkdir(parents=True)
    bz.write_bytes(b"")
    os.utime(bz, (mtime, mtime))
    (bd / kbuild.RECORD).write_text(json.dumps({"src": str(src), "fragments": [], "base": "tinyconfig"}))


def test_staleness_by_mtime_skips_git_and_the_build_dir(tmp_path: Path) -> None:
    src = _tree(tmp_path / "linux")
    old = time.time() - 1000
    for p in src.rglob("*"):
        os.utime(p, (old - 10, old - 10))
    bd = src / "build"  # a build dir inside the tree must not make itself stale
    _built(bd, src, old)
    (bd / "fresh.o").write_text("")
    (src / ".git").mkdir()
    (src / ".git" / "index").write_text("")
    assert not kbuild.is_stale(src, bd)
    os.utime(src / "mm" / "memory.c", None)  # touch
    assert kbuild.is_stale(src, bd)
    assert kbuild.is_stale(src, tmp_path / "never-built")


def test_for_run_leaves_fresh_and_foreign_dirs_alone(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert kbuild.for_run(plain, print) == plain
    src = _tree(tmp_path / "linux")
    old = time.time() - 1000
    for p in src.rglob("*"):
        os.utime(p, (old - 10, old - 10))
    bd = tmp_path / "bd"
    _built(bd, src, old)
    said: list[str] = []
    assert kbuild.for_run(bd, said.append) == bd.resolve()
    assert said == []  # fresh: nothing built, nothing said
    assert kbuild.source_of(bd) == src
    assert kbuild.source_of(src) == src
    assert kselftest.source_for(str(bd)) == src
    assert kselftest.source_for(str(bd / "arch" / "x86" / "boot" / "bzImage")) == src


def test_source_specs_and_cache_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert sources.package_for("debian:6.12") == "linux-source-6.12"
    assert sources.package_for("debian:6.1") == "linux-source-6.1"
    for bad in ("debian:6", "6.12", "debian:6.12.117", "git:x"):
        with pytest.raises(InputError):
            sources.package_for(bad)
    base = tmp_path / "harness" / "sources" / "debian"
    done = base / "linux-source-6.12-6.12.117-1_deb12u1"
    done.mkdir(parents=True)
    (done / ".harness-unpacked").write_text("6.12.117-1~deb12u1\n")
    (base / "linux-source-6.1-6.1.192-2").mkdir()  # no marker: a half-finished unpack
    (t,) = sources.cached()
    assert (t.spec, t.package, t.version, t.root) == (
        "debian:6.12",
        "linux-source-6.12",
        "6.12.117-1~deb12u1",
        done,
    )
    assert sources.for_series(6, 12) == t and sources.for_series(6, 1) is None
    with pytest.raises(InputError, match="harness source fetch debian:6.1"):
        kselftest.source_for("debian:6.1.0-56")


def test_kselftest_source_can_be_a_newer_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    newer = _tree(tmp_path / "linux-6.12")
    monkeypatch.setenv("HARNESS_KSELFTEST_SRC", str(newer))
    assert kselftest.source_for("debian:6.1.0-56") == newer
    with pytest.raises(InputError, match="no tools/testing/selftests/mm .*HARNESS_KSELFTEST_SRC"):
        kselftest.build(newer, "mm", "cow")


def test_a_tree_that_does_not_build_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from harness import cli

    if not all(shutil.which(t) for t in ("make", "gcc", "flex", "bison", "bc")):
        pytest.skip("kernel build tools not installed (ci/setup.sh)")
    tree = _tree(tmp_path / "linux")
    # a "tree" whose make fails like a compile error does (the real build prints the same way)
    (tree / "Makefile").write_text(
        "tinyconfig:\n\t@echo '  CC      mm/memory.o'\n"
        "\t@echo 'mm/memory.c:12:3: error: expected ; before }' >&2\n\t@false\n"
    )
    code = cli.main(["build", "--src", str(tree), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(
        "harness: error: make tinyconfig failed: mm/memory.c:12:3: error: expected ; before }"
    )
    assert err[-1].endswith(f"(log: {(tmp_path / 'b').resolve() / 'build.log'})")
    assert "mm/memory.c:12:3" in (tmp_path / "b" / "build.log").read_text()


def test_a_crosscheck_disagreement_makes_the_run_exit_1(tmp_path: Path) -> None:
    from harness.model import CaseResult, Expectation, Outcome, Verdict
    from harness.run import runner

    def r(i: str, o: Outcome, v: Verdict) -> CaseResult:
        return CaseResult(i, "p", o, v, "", "", Expectation(Expect.PASS))

    out = runner.RunOutcome(
        tmp_path,
        [
            r("cow.fork.child-keeps-data.base", Outcome.OK, Verdict.PASS),
            r("kselftest.mm.cow.basic-cow-after-fork-with-base-page", Outcome.NOT_OK, Verdict.FAIL),
        ],
    )
    runner.cross_check(out)
    assert out.exit_code == 1
    assert "DISAGREE" in out.crosscheck and (tmp_path / "crosscheck.txt").read_text().startswith("status")
    quiet = runner.RunOutcome(tmp_path / "x", [r("cow.fork.child-keeps-data.base", Outcome.OK, Verdict.PASS)])
    runner.cross_check(quiet)
    assert quiet.exit_code == 0 and quiet.crosscheck == ""
