"""harness.lava: the job definition and device dictionary (golden files), the guest's autorun
script, and the monitor pattern that turns our KTAP into LAVA results. A vm test runs a
generated job (cow cases, probes, RDMA cases on the userspace image) with Debian's
lava-dispatcher (lava-run) for real, collects its log into a run dir, and checks the verdicts
against a local run of the same cases on the same kernel."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.report import lava
from tests.helpers.cli_run import Run, harness_run
from tests.helpers.fake_lava import TOKEN, FakeLava, server_log
from tests.helpers.kernels import TEST_KERNEL
from tests.helpers.paths import DATA

GOLDEN = DATA / "golden"
REGEN = os.environ.get("HARNESS_REGEN_GOLDEN") == "1"

JOB = lava.Job(
    name="harness cow on 6.12.117+deb12-amd64 (28 cases)",
    kernel_url="https://lab.example/artefacts/n1/bzImage",
    initrd_url="https://lab.example/artefacts/n1/initramfs.cpio.gz",
    scratch_url="https://lab.example/artefacts/n1/scratch-ext4.img.gz",
    swap_url="https://lab.example/artefacts/n1/scratch-swap.img.gz",
    userspace_url="https://lab.example/artefacts/n1/usr.squashfs",
)


def golden(name: str, text: str) -> None:
    if REGEN:
        (GOLDEN / name).write_text(text)
    assert text == (GOLDEN / name).read_text()


def test_job_definition_golden() -> None:
    golden("lava_job.yaml", lava.dump(lava.job_definition(JOB)))


def test_device_dictionary_golden() -> None:
    golden("lava_device.yaml", lava.dump(lava.device_dictionary()))
    nic = lava.dump(lava.device_dictionary(nic=True))
    assert "-netdev user,id=n0,restrict=on" in nic and "-nic none" not in nic  # the RDMA cases' NIC
    bar = lava.dump(lava.device_dictionary(extra_options=lava.pci_ram_bar_options()))
    assert (
        "-device ivshmem-plain,memdev=pcibar,master=on" in bar
    )  # pfnmap_pci's RAM BAR, as a local run has it
    job = lava.job_definition(dataclasses.replace(JOB, extra_options=lava.pci_ram_bar_options()))
    assert job["context"]["extra_options"] == list(lava.pci_ram_bar_options())  # for a server's template


def test_autorun_script_golden() -> None:
    progs = [
        lava.Program("cow_fork", ("/harness/cow_tests/cow_fork",)),
        lava.Program(
            "cow_unshare", ("/harness/cow_tests/cow_unshare", "cow.unshare.vmsplice.base", "odd'id")
        ),
        lava.Program("perf_rb", ("/usr/bin/python3", "-I", "/harness/probes/perf_rb.py"), 300),
    ]
    text = lava.autorun_script(progs, '{"format": 1}', "echo kernel=$(uname -r)")
    golden("lava_agent.sh", text)
    assert "'odd'\"'\"'id'" in text  # ids are shell-quoted
    with pytest.raises(ValueError):
        lava.autorun_script(progs, "EOF_PLAN", "true")


def test_the_job_is_what_lava_expects() -> None:
    job = yaml.safe_load(lava.dump(lava.job_definition(JOB)))
    deploy, boot, test = (next(iter(a.values())) for a in job["actions"])
    assert job["device_type"] == "qemu" and job["context"]["arch"] == "x86_64"
    assert deploy["to"] == "tmpfs" and list(deploy["images"]) == [
        "kernel",
        "initrd",
        "scratch",
        "swap",
        "userspace",
    ]
    assert "readonly=on" in deploy["images"]["userspace"]["image_arg"]  # vdc, after the scratch disks
    assert all("{%s}" % k in v["image_arg"] for k, v in deploy["images"].items())
    assert boot == {"method": "qemu", "media": "tmpfs", "timeout": {"minutes": 5}}  # no prompts: no shell
    (mon,) = test["monitors"]
    assert {"name", "start", "end", "pattern"} <= set(mon)
    assert set(mon["fixupdict"].values()) == {"pass", "fail", "skip"}


def results(console: str) -> list[tuple[str, str]]:
    """What LAVA's monitor makes of console text: (case id, pass/fail/skip)."""
    out = []
    for m in re.finditer(lava.RESULT_PATTERN, console, re.DOTALL):
        out.append((m.group("test_case_id"), lava.FIXUP[m.group("result")]))
    return out


def test_the_pattern_reads_ktap_result_lines() -> None:
    console = (
        "KTAP version 1\r\r\n1..4\r\n# cow.fork.a: diagnostics, ok 9 not.this\r\n"
        "ok 1 cow.fork.a\r\r\nnot ok 2 cow.fork.b\r\n"
        "ok 3 cow.fork.c # SKIP no THP\r\nok 4 cow.fork.d # some other note\n"
    )
    assert results(console) == [
        ("cow.fork.a", "pass"),
        ("cow.fork.b", "fail"),
        ("cow.fork.c", "skip"),
        ("cow.fork.d", "pass"),
    ]


def test_a_result_line_is_read_only_once_complete() -> None:
    """The console arrives in pieces: "ok 3 id" must not match before " # SKIP" can follow."""
    assert results("ok 3 cow.fork.c") == []
    assert results("ok 3 cow.fork.c # SK") == []
    assert results("ok 3 cow.fork.c # SKIP x\r\n") == [("cow.fork.c", "skip")]


def lava_log(text: str) -> list[dict]:  # type: ignore[type-arg]
    """lava-run's JSON-lines log (on stdout and stderr, among a few lines of other text)."""
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "lvl" in rec:
            out.append(rec)
    return out


SLICE = (
    "cow.unshare.*.base",
    "cow.unshare.*.thp",
    "cow.vmsplice.unmap-in-child.hugetlb-*",
    "cow.rdma-ro.*.base",
    "probe.pfnmap.*",
    "probe.perf-rb.vmflags-no-pfnmap",
)


@pytest.mark.vm
def test_a_generated_job_runs_with_lava_dispatcher_and_comes_back_judged(tmp_path: Path) -> None:
    """`harness lava` writes a job of a slice of the default suite (cow cases, RDMA cases and
    probes, on the userspace image); `harness lava run` runs it under lava-run and collects the
    log; the run dir's verdicts are the ones a local run of the same cases gives."""
    if shutil.which("lava-run") is None:
        if os.environ.get("CI"):  # ci/setup.sh installs it: in CI a skip here would hide LAVA
            pytest.fail("lava-run not found although ci/setup.sh installs lava-dispatcher")
        pytest.skip("lava-dispatcher not installed (apt-get install lava-dispatcher)")
    bundle, lava_dir, local = tmp_path / "bundle", tmp_path / "lava-run", tmp_path / "local"
    filters = [a for f in SLICE for a in ("--filter", f)]
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "lava",
            "--kernel",
            TEST_KERNEL,
            *filters,
            "--out",
            str(bundle),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr
    r = subprocess.run(
        [sys.executable, "-m", "harness.cli", "lava", "run", str(bundle), "--out", str(lava_dir)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert r.returncode in (0, 1), r.stdout[-3000:] + r.stderr[-3000:]
    # LAVA's own view of the job: it passed, and its monitor read every case's KTAP line
    log = lava_log((lava_dir / "lava" / "lava-run.log").read_text())
    job = next(
        m["msg"]
        for m in log
        if m["lvl"] == "results" and isinstance(m["msg"], dict) and m["msg"].get("case") == "job"
    )
    assert job["result"] == "pass"
    got = {
        m["msg"]["extra"]["test_case_id"]: m["msg"]["result"]
        for m in log
        if m["lvl"] == "results"
        and isinstance(m["msg"], dict)
        and m["msg"].get("definition") == "harness-cow"
    }
    assert got["cow.unshare.vmsplice.base"] == "pass"
    assert got["cow.vmsplice.unmap-in-child.hugetlb-2m"] == "fail"  # the known hugetlb gap (XFAIL)
    # ours: the collected run dir, judged
    lava_run = Run(r.returncode, lava_dir, r.stdout, r.stderr)
    fp = lava_run.fingerprint()
    assert fp["machine"]["accel"] == "lava" and fp["lava"]["job_result"] == "pass"
    assert fp["lava"]["monitor_differs"] == []  # LAVA's reading of the live KTAP is ours
    assert fp["userspace"]["kind"] == "image" and fp["guest"]["rdma"] == "rxe0"
    for name in ("junit.xml", "report.html", "kcidb.json", "summary.txt", "console.log", "dmesg.log"):
        assert (lava_dir / name).is_file(), name
    lv = lava_run.verdicts()
    planned = sum(len(p["ids"]) for p in json.loads((bundle / "plan.json").read_text())["programs"])
    assert len(lv) == len(got) == planned >= 20
    assert lv["cow.vmsplice.unmap-in-child.hugetlb-2m"] == "XFAIL"
    assert lv["probe.pfnmap.vvar.proc-self-mem"] == "PASS"  # python3 from the userspace image
    # submit: the same job through a LAVA server's REST API (a fake one here, serving this
    # lava-run's log as a server gives it), waited for, fetched and collected the same way
    tok = tmp_path / "token"
    tok.write_text(TOKEN + "\n")
    with FakeLava(server_log((lava_dir / "lava" / "lava-run.log").read_text())) as srv:
        sub = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness.cli",
                "lava",
                "submit",
                str(bundle),
                "--url",
                srv.url,
                "--token-file",
                str(tok),
                "--poll",
                "0.1",
                "--out",
                str(tmp_path / "submitted"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert sub.returncode == r.returncode, sub.stderr[-3000:]
    assert srv.posted == [{"definition": (bundle / "job.yaml").read_text()}]
    assert Run(sub.returncode, tmp_path / "submitted", "", "").verdicts() == lv
    # the same cases run locally on the same kernel: the same verdicts
    loc = harness_run(local, "--kernel", TEST_KERNEL, "--userspace", "image", *filters)
    assert loc.rc in (0, 1), loc.stderr[-3000:]
    assert loc.verdicts() == lv
