"""Guest test programs (cow_tests/ and guest/probes/) built and run on the host.

What is checked is the contract the harness relies on: a fixed, unique --list (kept as golden
files, tests/data/golden/case_ids/<program>.txt; regenerate with HARNESS_REGEN_GOLDEN=1 when an
id change is intended); ids of the form cow.<operation>.<memory type>; KTAP with one result line
per planned case, named by its id, in the order asked for; exit codes 0 / 1 / 2; settings a case
changes are put back; no scratch file is left behind.

Outcomes on the host are judged like the harness judges a guest: against expectations.yaml for
the host kernel's version. A "not ok" must be an expected failure there (e.g. the perf ring
buffer cases from 6.14, the hugetlb vmsplice leak); an unexpected "not ok" or an unexpected
"ok" (XPASS) fails the test. The host environment decides what runs: COW_TMPDIR is the test's
tmp dir, COW_EXT4_DIR too when that is on ext4; swap, hugetlb pages, gup_test and KSM are used
when the host has them and SKIP otherwise.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.judge import expect
from harness.model import Kernel, Outcome, Verdict
from tests.helpers.known_ids import FIRST_SLICE_IDS
from tests.helpers.paths import DATA, REPO

ROOT = REPO
COW_DIR = ROOT / "cow_tests"
PROBE_DIR = ROOT / "guest" / "probes"
GOLDEN_IDS = DATA / "golden" / "case_ids"
REGEN = os.environ.get("HARNESS_REGEN_GOLDEN") == "1"


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

C_PROGRAMS = [
    "cow_fork",
    "cow_vmsplice",
    "cow_iouring",
    "cow_register",
    "cow_unshare",
    "cow_gup",
    "cow_ksm",
    "cow_rdma",
    "cow_force",
    "cow_dio",
]
PROBES = ["pfnmap_vvar", "pfnmap_pci", "perf_rb"]
ALL_PROGRAMS = C_PROGRAMS + PROBES

# The memory types (common.h enum mem_kind, memtypes.c names): the last part of every cow id.
MEMORY_TYPES = (
    "base base-swapped thp thp-swapped thp-pte thp-pte-swapped thp-single-pte thp-mremap thp-mremap-kept "
    "thp-partially-shared thp-single-pte-swapped mthp-16k mthp-32k mthp-64k mthp-128k mthp-256k mthp-512k mthp-1024k "
    "hugetlb-2m hugetlb-1g zeropage huge-zeropage memfd-private tmpfs-private ext4-private "
    "hugetlb-memfd-private hugetlb-memfd-1g-private anon-shared memfd-shared tmpfs-shared ext4-shared "
    "hugetlb-memfd-shared hugetlb-memfd-1g-shared base-readonly anon-memfd-2vma perf-rb"
).split() + [
    f"mthp-{kb}k{form}"
    for form in ("-swapped", "-single-pte", "-single-pte-swapped", "-mremap-kept", "-partially-shared")
    for kb in (16, 32, 64, 128, 256, 512, 1024)
]

# Ids of the first slice: the expectations file and earlier results key on them.
STABLE_IDS = list(FIRST_SLICE_IDS)

# Settings a case may change (and the driver must put back).
WATCHED_SETTINGS = sorted(
    str(p)
    for pattern in ("hugepages-*kB/enabled", "enabled", "use_zero_page")
    for p in Path("/sys/kernel/mm/transparent_hugepage").glob(pattern)
) + [
    p
    for p in (
        "/sys/kernel/mm/ksm/run",
        "/sys/kernel/mm/ksm/sleep_millisecs",
        "/sys/kernel/mm/ksm/pages_to_scan",
    )
    if Path(p).exists()
]

ID_RE = re.compile(r"^[a-z0-9.-]+$")
COW_ID_RE = re.compile(r"^cow\.[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?P<mem>[a-z0-9-]+)$")
RESULT_RE = re.compile(r"^(ok|not ok) (\d+) (\S+)(?: # (SKIP)(?: (.*))?)?$")
RUN_TIMEOUT_S = 300
EXT4_SUPER_MAGIC = 0xEF53


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


@pytest.fixture(scope="module")
def host_kernel() -> Kernel:
    release = os.uname().release
    config: dict[str, str] = {}
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep and key.startswith("CONFIG_"):
                    config[key] = value
    except OSError:
        pass
    return Kernel(
        spec="host",
        bzimage=Path("/"),
        release=release,
        version=expect.parse_version(release),
        modules_dir=None,
        config=config,
    )


@pytest.fixture(scope="module")
def rules() -> expect.RuleSet:
    return expect.load(ROOT / "expectations.yaml")


def _argv(name: str, build_dir: Path) -> list[str]:
    if name in C_PROGRAMS:
        return [str(build_dir / name)]
    return [sys.executable, "-I", str(PROBE_DIR / (name + ".py"))]


def _is_ext4(path: Path) -> bool:
    # os.statvfs has no f_type; stat -f does.
    out = subprocess.run(["stat", "-f", "-c", "%t", str(path)], capture_output=True, text=True)
    return out.returncode == 0 and int(out.stdout.strip() or "0", 16) == EXT4_SUPER_MAGIC


def _env(tmp: Path | None, ext4: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COW_TMPDIR", "COW_EXT4_DIR")}
    if tmp is not None:
        env["COW_TMPDIR"] = str(tmp)
        if ext4 and _is_ext4(tmp):
            env["COW_EXT4_DIR"] = str(tmp)
    return env


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=cwd, env=env)


def _list(name: str, build_dir: Path, cwd: Path) -> list[str]:
    proc = _run(_argv(name, build_dir) + ["--list"], cwd)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout.splitlines()


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


def _settings() -> dict[str, str]:
    return {p: Path(p).read_text() for p in WATCHED_SETTINGS}


@pytest.mark.parametrize("name", ALL_PROGRAMS)
def test_list_is_fixed_and_well_formed(name: str, build_dir: Path, tmp_path: Path) -> None:
    first = _list(name, build_dir, tmp_path)
    assert first == _list(name, build_dir, tmp_path)
    assert len(first) == len(set(first))
    for i in first:
        assert ID_RE.match(i), i
        if i.startswith("cow."):
            m = COW_ID_RE.match(i)
            assert m is not None and m.group("mem") in MEMORY_TYPES, i
        else:
            assert i.startswith("probe."), i
    golden = GOLDEN_IDS / (name + ".txt")
    if REGEN:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text("\n".join(first) + "\n")
    assert first == golden.read_text().splitlines(), (
        "id set changed: run with HARNESS_REGEN_GOLDEN=1 if intended"
    )


def test_ids_unique_across_programs_and_stable_ids_kept() -> None:
    every = [i for name in ALL_PROGRAMS for i in (GOLDEN_IDS / (name + ".txt")).read_text().splitlines()]
    assert len(every) == len(set(every))
    assert not set(STABLE_IDS) - set(every)


@pytest.mark.parametrize("name", ALL_PROGRAMS)
def test_runs_clean_on_host(
    name: str, build_dir: Path, tmp_path: Path, host_kernel: Kernel, rules: expect.RuleSet
) -> None:
    ids = _list(name, build_dir, tmp_path)
    before = _settings()
    proc = _run(_argv(name, build_dir), tmp_path, _env(tmp_path))
    results = _check_ktap(proc.stdout, ids)
    outcome = {"ok": Outcome.OK, "not ok": Outcome.NOT_OK}
    wrong = []
    for case_id, (status, directive, diags) in zip(ids, results, strict=False):
        got = Outcome.SKIP if directive == "SKIP" else outcome[status]
        exp = expect.expectation_for(rules, case_id, host_kernel)
        verdict = expect.judge(got, exp)
        if verdict in (Verdict.FAIL, Verdict.XPASS):
            wrong.append(
                "%s: %s on %s (expected %s%s)\n  %s"
                % (
                    case_id,
                    verdict.value,
                    host_kernel.version,
                    exp.expect,
                    " by " + exp.source if exp.source else "",
                    "\n  ".join(diags),
                )
            )
    assert not wrong, "\n".join(wrong)
    any_not_ok = any(r[0] == "not ok" for r in results)
    assert proc.returncode == (1 if any_not_ok else 0), proc.stdout + proc.stderr
    assert proc.stderr == "", proc.stderr
    if name == "cow_iouring":
        for case_id, (_, directive, diags) in zip(ids, results, strict=False):
            if directive != "SKIP":
                # COW_TMPDIR is where the WRITE_FIXED target files go.
                assert any(("scratch file in %s " % tmp_path) in d for d in diags), (case_id, diags)
    assert _settings() == before, "a case left a THP/KSM setting changed"
    assert list(tmp_path.iterdir()) == [], "scratch files left behind"


def test_ext4_cases_skip_without_ext4_dir(build_dir: Path, tmp_path: Path) -> None:
    ids = [
        i for i in _list("cow_register", build_dir, tmp_path) if i.endswith((".ext4-private", ".ext4-shared"))
    ]
    assert ids
    proc = _run(_argv("cow_register", build_dir) + ids, tmp_path, _env(tmp_path, ext4=False))
    for status, directive, _diags in _check_ktap(proc.stdout, ids):
        assert (status, directive) == ("ok", "SKIP")
    assert proc.stdout.count("# SKIP COW_EXT4_DIR is not set") == len(ids), proc.stdout
    assert proc.returncode == 0


@pytest.mark.parametrize("name", ALL_PROGRAMS)
def test_selected_ids_run_in_given_order(name: str, build_dir: Path, tmp_path: Path) -> None:
    ids = list(reversed(_list(name, build_dir, tmp_path)))[:2]
    proc = _run(_argv(name, build_dir) + ids, tmp_path, _env(tmp_path))
    _check_ktap(proc.stdout, ids)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ALL_PROGRAMS)
def test_unknown_id_exits_2(name: str, build_dir: Path, tmp_path: Path) -> None:
    first = _list(name, build_dir, tmp_path)[0]
    proc = _run(_argv(name, build_dir) + [first, "cow.no-such-case.base"], tmp_path)
    assert proc.returncode == 2
    assert "cow.no-such-case.base" in proc.stderr
    assert proc.stdout == ""


def test_cow_rdma_without_libibverbs_skips_saying_what_to_install(tmp_path: Path) -> None:
    """A host without libibverbs-dev builds cow_rdma on rdma_none.c: same ids, every case a SKIP
    that names the missing packages (not a build failure that takes the other programs along)."""
    proc = subprocess.run(
        ["make", "-s", "-C", str(COW_DIR), f"O={tmp_path}", "HAVE_VERBS=0", f"{tmp_path}/cow_rdma"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    ids = subprocess.run(
        [str(tmp_path / "cow_rdma"), "--list"], capture_output=True, text=True
    ).stdout.split()
    assert ids == (GOLDEN_IDS / "cow_rdma.txt").read_text().split()
    out = subprocess.run(
        [str(tmp_path / "cow_rdma"), ids[0]], capture_output=True, text=True, timeout=60
    ).stdout
    assert (
        f"ok 1 {ids[0]} # SKIP no RDMA device to register with (cow_rdma was built without libibverbs: "
        "install libibverbs-dev and ibverbs-providers on the host (ci/setup.sh))"
    ) in out.splitlines()
