"""The real CLI on bad input: exit 2, one "harness: error:" line on stderr, never a traceback.

Each case runs `python -m harness.cli` as a subprocess with its own --out under tmp_path and
(where the cache does not matter) its own XDG_CACHE_HOME, so nothing is left behind. Only
`--suite probes` is selected where a suite is needed: it needs no C build. No case boots a guest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.kernels import kernel
from tests.helpers.paths import REPO
from tests.helpers.synthetic_bzimage import make_bzimage

# The runner's progress lines ("[    0.1s] downloading ...") also go to stderr.
PROGRESS = re.compile(r"^\[\s*\d+\.\d+s\] ")


def cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, own_cache: bool = True
) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [e.get("PYTHONPATH")])])
    if own_cache:
        e["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=e,
        timeout=600,
    )


def assert_one_error(p: subprocess.CompletedProcess[str], *words: str, allow_progress: bool = False) -> str:
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, p.stderr
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.splitlines()
    if allow_progress:
        lines = [ln for ln in lines if not PROGRESS.match(ln)]
    assert len(lines) == 1, f"want one stderr line, got:\n{p.stderr}"
    line = lines[0]
    assert line.startswith("harness: error: "), line
    for w in words:
        assert w in line, f"{w!r} not in {line!r}"
    return line


@pytest.fixture(scope="module")
def real_bzimage() -> Path:
    spec = os.environ.get("HARNESS_TEST_KERNEL", "debian:6.12")
    try:
        return kernel.resolve(spec).bzimage
    except HarnessError as e:
        pytest.skip(f"{spec} not available ({e}); run ci/setup.sh")


@pytest.fixture
def bootable(tmp_path: Path) -> Path:
    """A kernel path that passes every check before boot: the real one if there is one,
    else a synthetic bzImage header (these cases fail before anything would boot it)."""
    spec = os.environ.get("HARNESS_TEST_KERNEL", "debian:6.12")
    try:
        return kernel.resolve(spec).bzimage
    except HarnessError:
        p = tmp_path / "vmlinuz-synthetic"
        p.write_bytes(make_bzimage())
        return p


def run_args(tmp_path: Path, *args: str) -> list[str]:
    return ["run", "--suite", "probes", "--out", str(tmp_path / "out"), *args]


# --- kernels --------------------------------------------------------------------------------


def test_missing_kernel_path(tmp_path: Path) -> None:
    p = cli(tmp_path, *run_args(tmp_path, "--kernel", str(tmp_path / "no-such-vmlinuz")))
    assert_one_error(p, "no-such-vmlinuz", "no such kernel file")


def test_not_a_bzimage(tmp_path: Path) -> None:
    f = tmp_path / "vmlinuz-text"
    f.write_text("this is not a kernel\n")
    p = cli(tmp_path, *run_args(tmp_path, "--kernel", str(f)))
    assert_one_error(p, "vmlinuz-text", "not an x86 bzImage")


def test_truncated_real_bzimage(tmp_path: Path, real_bzimage: Path) -> None:
    f = tmp_path / "vmlinuz-cut"
    with open(real_bzimage, "rb") as src:
        f.write_bytes(src.read(3 * 1024 * 1024))
    p = cli(tmp_path, *run_args(tmp_path, "--kernel", str(f)))
    assert_one_error(p, "vmlinuz-cut", "truncated", str(3 * 1024 * 1024))


def test_unknown_debian_version(tmp_path: Path) -> None:
    for tool in ("apt-get", "dpkg-deb", "depmod"):
        if not (shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists()):
            pytest.skip(f"{tool} not installed: this case needs apt-get download to fail")
    p = cli(
        tmp_path, *run_args(tmp_path, "--kernel", "debian:9.99.0-1"), own_cache=False
    )  # the shared apt state
    # Progress lines (the apt state's update) may come first; the error is one line.
    assert_one_error(p, "debian:9.99.0-1", "nearest available", allow_progress=True)


def test_debian_line_with_no_package(tmp_path: Path) -> None:
    p = cli(tmp_path, *run_args(tmp_path, "--kernel", "debian:6.99"), own_cache=False)  # the shared apt state
    assert_one_error(
        p, "debian:6.99", "no such kernel package; nearest available: debian:", allow_progress=True
    )


def test_debian_spec_that_is_no_version(tmp_path: Path) -> None:
    p = cli(
        tmp_path, *run_args(tmp_path, "--kernel", "debian:latest"), own_cache=False
    )  # the shared apt state
    assert_one_error(p, "debian:latest", "not a Debian kernel spec", allow_progress=True)


def test_kernel_fetch_missing_path(tmp_path: Path) -> None:
    p = cli(tmp_path, "kernel", "fetch", str(tmp_path / "nope"))
    assert_one_error(p, "nope", "no such kernel file")


# --- host tools -----------------------------------------------------------------------------


def test_qemu_missing_fails_fast(tmp_path: Path, bootable: Path) -> None:
    # Everything the steps before boot could use is there; only QEMU is not.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in (
        "make",
        "gcc",
        "cc",
        "as",
        "ld",
        "sh",
        "busybox",
        "depmod",
        "dpkg-deb",
        "apt-get",
        "apt-cache",
    ):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    (bindir / "python3").symlink_to(sys.executable)
    out = tmp_path / "out"
    p = cli(
        tmp_path,
        "run",
        "--kernel",
        str(bootable),
        "--out",
        str(out),
        env={"PATH": str(bindir)},
        own_cache=False,
    )
    assert_one_error(p, "qemu-system-x86_64 not found")
    # Checked first: no C build, no initramfs, no report of cases that never could run.
    assert not (out / "initramfs.cpio").exists()
    assert not (out / "junit.xml").exists()


# --- options and files ----------------------------------------------------------------------


def test_expectations_invalid_shows_file_and_line(tmp_path: Path, bootable: Path) -> None:
    bad = tmp_path / "exp.yaml"
    bad.write_text('version: 1\nrules:\n  - match: "cow.*"\n    expect: maybe\n')
    p = cli(tmp_path, *run_args(tmp_path, "--kernel", str(bootable), "--expectations", str(bad)))
    assert_one_error(p, f"{bad}:4:", "maybe")


def test_expectations_yaml_syntax_error(tmp_path: Path, bootable: Path) -> None:
    bad = tmp_path / "exp.yaml"
    bad.write_text('version: 1\nrules:\n  - match: "cow.*\n    expect: fail\n')
    p = cli(tmp_path, *run_args(tmp_path, "--kernel", str(bootable), "--expectations", str(bad)))
    line = assert_one_error(p, str(bad), "YAML")
    assert re.search(re.escape(str(bad)) + r":\d+:", line), line


def test_expectations_missing_file(tmp_path: Path, bootable: Path) -> None:
    p = cli(
        tmp_path,
        *run_args(tmp_path, "--kernel", str(bootable), "--expectations", str(tmp_path / "none.yaml")),
    )
    assert_one_error(p, "none.yaml", "cannot read")


def test_unknown_suite(tmp_path: Path, bootable: Path) -> None:
    p = cli(tmp_path, "run", "--suite", "nosuch", "--kernel", str(bootable), "--out", str(tmp_path / "out"))
    assert_one_error(p, "--suite nosuch", "unknown suite", "cow", "probes")


def test_filter_matches_nothing(tmp_path: Path, bootable: Path) -> None:
    p = cli(tmp_path, *run_args(tmp_path, "--kernel", str(bootable), "--filter", "no.such.case*"))
    assert_one_error(p, "--filter no.such.case*", "matches no test id")


@pytest.mark.parametrize("kernels", [1, 2], ids=["run", "matrix"])
def test_memory_too_small_for_1g_pages(tmp_path: Path, bootable: Path, kernels: int) -> None:
    """1 GiB hugetlb cases take a guest of 3 GiB + one GiB per boot-time 1 GiB page (three with the
    MAP_PRIVATE hugetlb memfd among the fork cases: 6144 MiB): an explicit smaller --memory is
    refused before anything boots, for one run and for a matrix (the C tests are built once in the
    shared cache: own_cache=False)."""
    ks = ["--kernel", str(bootable)] + (["--kernel", "debian:6.1"] if kernels == 2 else [])
    p = cli(
        tmp_path,
        "run",
        "--suite",
        "cow",
        "--out",
        str(tmp_path / "out"),
        *ks,
        "--memory",
        "4096",
        "--filter",
        "cow.fork.child-keeps-data.*",
        own_cache=False,
    )
    assert_one_error(p, "--memory 4096", "hugetlb-1g", "6144", allow_progress=True)


def test_list_with_filter_matching_nothing(tmp_path: Path, bootable: Path) -> None:
    p = cli(tmp_path, "run", "--list", "--suite", "probes", "--kernel", str(bootable), "--filter", "zzz")
    assert_one_error(p, "--filter zzz", "matches no test id")


@pytest.mark.parametrize("where", ["under-a-file", "is-a-file"])
def test_out_not_writable(tmp_path: Path, bootable: Path, where: str) -> None:
    f = tmp_path / "regular-file"
    f.write_text("")
    out = f / "run" if where == "under-a-file" else f
    p = cli(tmp_path, "run", "--suite", "probes", "--kernel", str(bootable), "--out", str(out))
    assert_one_error(p, f"--out {out}", "not a writable directory")


def test_junit_not_writable(tmp_path: Path) -> None:
    f = tmp_path / "regular-file"
    f.write_text("")
    p = cli(
        tmp_path, *run_args(tmp_path, "--kernel", str(tmp_path / "nope"), "--junit", str(f / "junit.xml"))
    )
    assert_one_error(p, "junit")


# --- argparse -------------------------------------------------------------------------------


def assert_usage_error(p: subprocess.CompletedProcess[str], *words: str) -> None:
    assert "Traceback" not in p.stderr
    assert p.returncode == 2
    lines = p.stderr.splitlines()
    # argparse: the usage (wrapped over a few lines), then one error line.
    assert lines[0].startswith("usage: harness"), p.stderr
    assert all(ln.startswith(" ") for ln in lines[1:-1]), p.stderr
    assert re.match(r"harness( run)?: error: ", lines[-1]), p.stderr
    for w in words:
        assert w in lines[-1]


def test_accel_bogus(tmp_path: Path) -> None:
    p = cli(tmp_path, "run", "--accel", "bogus", "--out", str(tmp_path / "out"))
    assert_usage_error(p, "--accel", "bogus")
    assert not (tmp_path / "out").exists()


def test_memory_not_a_number(tmp_path: Path) -> None:
    assert_usage_error(cli(tmp_path, "run", "--memory", "lots"), "--memory", "lots")


def test_no_command(tmp_path: Path) -> None:
    assert_usage_error(cli(tmp_path), "command")


def test_debian_archive_that_cannot_be_reached(tmp_path: Path) -> None:
    # A fresh cache (no apt lists, no kernels) and a mirror nobody listens on.
    p = cli(
        tmp_path,
        *run_args(tmp_path, "--kernel", "debian:7.3"),
        env={"HARNESS_DEBIAN_MIRROR": "http://127.0.0.1:9"},
    )
    assert_one_error(
        p, "debian:7.3", "cannot reach the Debian archive", "no kernel is cached", allow_progress=True
    )


def test_kernel_list_available_unreachable(tmp_path: Path) -> None:
    p = cli(tmp_path, "kernel", "list", "--available", env={"HARNESS_DEBIAN_MIRROR": "http://127.0.0.1:9"})
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stdout == ""
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("harness: error: ")]
    assert len(errors) == 1 and "cannot reach the Debian archive" in errors[0], p.stderr
    assert p.stderr.splitlines()[-1] == errors[0]  # the progress line first, the error last


# --- numbers, checked before anything starts ------------------------------------------------

HUGE_MIB = str(1 << 40)  # more than any host has

BAD_NUMBERS = [
    (["--cpus", "0"], "--cpus 0", "1 or more"),
    (["--cpus", "-2"], "--cpus -2", "1 or more"),
    (["--memory", "64"], "--memory 64", "at least 128 MiB"),
    (["--memory", "0"], "--memory 0", "at least 128 MiB"),
    (["--memory", HUGE_MIB], f"--memory {HUGE_MIB}", "more than this host has", "MemTotal"),
    (["--timeout", "0"], "--timeout 0", "more than 0 seconds"),
    (["--timeout", "-5"], "--timeout -5", "more than 0 seconds"),
    (["--timeout", "nan"], "--timeout nan", "more than 0 seconds"),
    (["-j", "0"], "-j 0", "1 or more"),
    (["--jobs", "-1"], "-j -1", "1 or more"),
    (["--repeat", "0"], "--repeat 0", "1 or more"),
    (["--max-reboots", "-1"], "--max-reboots -1", "0 or more"),
    (["--shard", "0/4"], "--shard 0/4", "1 <= I <= N"),
    (["--shard", "5/4"], "--shard 5/4", "1 <= I <= N"),
    (["--shard", "1/0"], "--shard 1/0", "1 <= I <= N"),
    (["--shard", "a/b"], "--shard a/b", "1 <= I <= N"),
    (["--shard", "2"], "--shard 2", "1 <= I <= N"),
]


def assert_refused_up_front(p: subprocess.CompletedProcess[str], out: Path, *words: str) -> None:
    assert_one_error(p, *words)  # and nothing else on stderr: no progress, nothing fetched
    assert "not run" not in p.stdout and "Traceback" not in p.stdout, p.stdout
    assert p.stdout == "" and not out.exists()


@pytest.mark.parametrize(
    "args,words", [(a, w) for a, *w in BAD_NUMBERS], ids=[" ".join(a) for a, *_ in BAD_NUMBERS]
)
def test_run_refuses_a_bad_number_before_anything_starts(
    tmp_path: Path, args: list[str], words: list[str]
) -> None:
    # A kernel that does not exist: had the number got through, the error would name the kernel.
    out = tmp_path / "out"
    p = cli(tmp_path, "run", "--kernel", str(tmp_path / "no-such-vmlinuz"), "--out", str(out), *args)
    assert_refused_up_front(p, out, *words)


def test_a_matrix_refuses_a_bad_number_before_anything_starts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = cli(
        tmp_path,
        "run",
        "--kernel",
        "debian:6.12",
        "--kernel",
        "debian:6.1",
        "--out",
        str(out),
        "--memory",
        "100",
        "-j",
        "2",
    )
    assert_refused_up_front(p, out, "--memory 100", "at least 128 MiB")


@pytest.mark.parametrize(
    "command",
    [
        ["bisect", "--kernels", "debian:6.1.0-50,debian:6.1.0-56", "--test", "cow.fork.x.base"],
        ["series", "HEAD~2..HEAD", "--src", "."],
    ],
)
@pytest.mark.parametrize(
    "args,words",
    [
        (["--cpus", "0"], ["--cpus 0"]),
        (["--timeout", "0"], ["--timeout 0"]),
        (["--max-reboots", "-3"], ["--max-reboots -3"]),
        (["--memory", HUGE_MIB], ["more than this host has"]),
        (["-j", "0"], ["-j 0"]),
    ],
)
def test_bisect_and_series_refuse_bad_numbers_too(
    tmp_path: Path, command: list[str], args: list[str], words: list[str]
) -> None:
    out = tmp_path / "out"
    p = cli(tmp_path, *command, "--out", str(out), *args)
    assert_refused_up_front(p, out, *words)


def test_under_git_bisect_run_a_bad_number_stops_the_bisect(tmp_path: Path) -> None:
    p = cli(
        tmp_path,
        "run",
        "--kernel",
        str(tmp_path / "vmlinuz"),
        "--filter",
        "cow.*",
        "--bisect-exit",
        "--cpus",
        "0",
    )
    assert p.returncode == 128 and "Traceback" not in p.stderr  # 2 would mark the commit bad
    assert p.stderr.splitlines() == [
        "harness: error: --cpus 0: must be 1 or more (--bisect-exit: exit 128, git bisect run stops)"
    ]


def test_numbers_at_their_limits_are_accepted(tmp_path: Path) -> None:
    """--cpus 1 --memory 128 --timeout 0.5 -j 1 --repeat 1 --max-reboots 0 --shard 1/1 get past
    the check: the run then fails on the missing kernel, not on a number."""
    p = cli(
        tmp_path,
        *run_args(
            tmp_path,
            "--kernel",
            str(tmp_path / "no-such-vmlinuz"),
            "--cpus",
            "1",
            "--memory",
            "128",
            "--timeout",
            "0.5",
            "-j",
            "1",
            "--repeat",
            "1",
            "--max-reboots",
            "0",
            "--shard",
            "1/1",
        ),
    )
    assert_one_error(p, "no-such-vmlinuz", "no such kernel file")


def test_lava_commands_refuse_bad_input_in_one_line(tmp_path: Path) -> None:
    assert_one_error(cli(tmp_path, "lava", "collect"), "give the log")
    assert_one_error(cli(tmp_path, "lava", "collect", str(tmp_path / "nope")), "no such file")
    (tmp_path / "x.log").write_text("hello\n")
    assert_one_error(cli(tmp_path, "lava", "collect", str(tmp_path / "x.log")), "not a LAVA job log")
    assert_one_error(cli(tmp_path, "lava", "run", str(tmp_path)), "no job.yaml")
    (tmp_path / "job.yaml").write_text("device_type: qemu\n")
    p = cli(tmp_path, "lava", "submit", str(tmp_path), "--out", str(tmp_path / "run"))
    assert_one_error(p, "--url and --token-file")
    assert not (tmp_path / "run").exists()  # refused before anything was made
    tok = tmp_path / "token"
    tok.write_text("t\n")
    p = cli(
        tmp_path,
        "lava",
        "submit",
        str(tmp_path),
        "--url",
        "lava.example",
        "--token-file",
        str(tok),
        "--out",
        str(tmp_path / "run"),
    )
    assert_one_error(p, "http")
