"""Guest test programs (cow_tests/ and guest/probes/) built and run on the host.

The host kernel (6.18 on the development machines) has every behaviour these
cases check, so each program must report only ok / SKIP there. What is checked
is the contract the harness relies on: a fixed, unique --list; KTAP with one
result line per planned case, named by its id, in the order asked for; exit
codes 0 / 1 / 2.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COW_DIR = ROOT / "cow_tests"
PROBE_DIR = ROOT / "guest" / "probes"


def _have_liburing_a() -> bool:
    if shutil.which("gcc") is None:
        return False
    out = subprocess.run(
        ["gcc", "-print-file-name=liburing.a"], capture_output=True, text=True
    ).stdout.strip()
    # gcc echoes the bare name back when it cannot find the file.
    return out != "liburing.a" and Path(out).is_file()


pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or not _have_liburing_a(),
    reason="needs gcc, make and a static liburing (liburing-dev)",
)

# The fixed id sets: the harness and the expectations file key on these.
EXPECTED_IDS = {
    "cow_fork": [
        "cow.fork.child-keeps-data.base",
        "cow.fork.child-keeps-data.thp",
        "cow.fork-mprotect.child-keeps-data.base",
        "cow.fork-mprotect.child-keeps-data.thp",
    ],
    "cow_vmsplice": [
        "cow.vmsplice.unmap-in-child.base",
        "cow.vmsplice.unmap-in-child.thp",
    ],
    "cow_iouring": [
        "cow.iouring.mprotect-ro-rw.base",
        "cow.iouring.mprotect-ro-rw.thp",
        "cow.iouring.fork-while-registered.base",
    ],
    "pfnmap_vvar": [
        "probe.pfnmap.vvar.process-vm-readv",
        "probe.pfnmap.vvar.proc-self-mem",
    ],
}
C_PROGRAMS = ["cow_fork", "cow_vmsplice", "cow_iouring"]
ALL_PROGRAMS = C_PROGRAMS + ["pfnmap_vvar"]

ID_RE = re.compile(r"^[a-z0-9.-]+$")
RESULT_RE = re.compile(r"^(ok|not ok) (\d+) (\S+)(?: # (SKIP)(?: (.*))?)?$")
RUN_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cow_build")
    proc = subprocess.run(
        ["make", "-C", str(COW_DIR), "O=" + str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in proc.stderr, proc.stderr
    return out


def _argv(name: str, build_dir: Path) -> list[str]:
    if name in C_PROGRAMS:
        return [str(build_dir / name)]
    return [sys.executable, str(PROBE_DIR / (name + ".py"))]


def _run(argv: list[str], cwd: Path, env_tmp: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = None
    if env_tmp is not None:
        env = dict(os.environ, COW_TMPDIR=str(env_tmp))
    return subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=cwd, env=env)


def _check_ktap(stdout: str, ids: list[str]) -> list[tuple[str, str | None, list[str]]]:
    """Validate the document; return (result, directive, diagnostics) per case."""
    lines = stdout.splitlines()
    assert lines[:2] == ["KTAP version 1", "1..%d" % len(ids)], lines[:2]
    results: list[tuple[str, str | None, list[str]]] = []
    diags: list[str] = []
    for line in lines[2:]:
        m = RESULT_RE.match(line)
        if m is None:
            assert line.startswith("# "), "stray output line: %r" % line
            diags.append(line)
            continue
        status, num, name, directive, reason = m.groups()
        n = len(results) + 1
        assert int(num) == n, line
        assert name == ids[n - 1], line
        if directive == "SKIP":
            assert reason, "SKIP without a reason: %r" % line
        assert diags, "case %s printed no observation before its result" % name
        results.append((status, directive, diags))
        diags = []
    assert len(results) == len(ids), "planned %d, got %d results" % (len(ids), len(results))
    return results


@pytest.mark.parametrize("name", ALL_PROGRAMS)
def test_list_is_fixed_and_well_formed(name: str, build_dir: Path, tmp_path: Path) -> None:
    first = _run(_argv(name, build_dir) + ["--list"], tmp_path)
    second = _run(_argv(name, build_dir) + ["--list"], tmp_path)
    assert first.returncode == 0 and first.stderr == ""
    assert first.stdout == second.stdout
    ids = first.stdout.splitlines()
    assert len(ids) == len(set(ids))
    for i in ids:
        assert ID_RE.match(i), i
    assert ids == EXPECTED_IDS[name]


def test_ids_unique_across_programs() -> None:
    every = [i for ids in EXPECTED_IDS.values() for i in ids]
    assert len(every) == len(set(every))


@pytest.mark.parametrize("name", ALL_PROGRAMS)
def test_runs_clean_on_host(name: str, build_dir: Path, tmp_path: Path) -> None:
    proc = _run(_argv(name, build_dir), tmp_path, env_tmp=tmp_path)
    results = _check_ktap(proc.stdout, EXPECTED_IDS[name])
    failed = [EXPECTED_IDS[name][i] for i, r in enumerate(results) if r[0] == "not ok"]
    assert not failed, proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if name == "cow_iouring":
        ran = [r for r in results if r[1] != "SKIP"]
        for _, _, diags in ran:
            # COW_TMPDIR is where the scratch files go.
            assert any(("scratch file in %s " % tmp_path) in d for d in diags), diags
    assert list(tmp_path.iterdir()) == [], "scratch files left behind"


@pytest.mark.parametrize("name", ALL_PROGRAMS)
def test_selected_ids_run_in_given_order(name: str, build_dir: Path, tmp_path: Path) -> None:
    ids = list(reversed(EXPECTED_IDS[name]))[:2]
    proc = _run(_argv(name, build_dir) + ids, tmp_path, env_tmp=tmp_path)
    _check_ktap(proc.stdout, ids)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ALL_PROGRAMS)
def test_unknown_id_exits_2(name: str, build_dir: Path, tmp_path: Path) -> None:
    proc = _run(_argv(name, build_dir) + [EXPECTED_IDS[name][0], "cow.no-such-case.base"], tmp_path)
    assert proc.returncode == 2
    assert "cow.no-such-case.base" in proc.stderr
    assert proc.stdout == ""
