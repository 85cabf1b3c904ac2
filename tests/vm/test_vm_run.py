"""vm tests: the real `harness run` CLI boots real Debian kernels and the JUnit is checked."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.suites import registry as suites
from harness.vm import hugepages
from harness.vm.hugepages import HUGETLB_1G_SUFFIXES
from tests.helpers.cli_run import Run, harness_run
from tests.helpers.kernels import TEST_KERNEL, TEST_KERNEL_NEW, TEST_KERNEL_OLD
from tests.helpers.known_ids import FIRST_SLICE_IDS

pytestmark = pytest.mark.vm

# The first slice of cases; still asserted by id so a rename cannot drop them silently.
SLICE_IDS = set(FIRST_SLICE_IDS)

# What differs between the Debian kernels, as observed, by line. The comments name the behaviour
# (a section of docs/semantics.md).
DIFFERENCES = {
    #  id                                              6.1        6.12       7.3
    "cow.unshare.odirect-write.base": ("XFAIL", "PASS", "PASS"),  # odirect-pin: FOLL_GET vs FOLL_PIN
    "cow.unshare.odirect-write.hugetlb-2m": ("XFAIL", "PASS", "PASS"),  # the same through hugetlb_wp()
    "cow.unshare.process-vm-readv.base-swapped": ("PASS", "PASS", "PASS"),  # swap-in, then unshare
    "cow.odirect.tmpfs-file.base": ("XFAIL", "PASS", "PASS"),  # tmpfs-odirect
    "cow.iouring-register-ok.anon-memfd-2vma": ("XFAIL", "PASS", "PASS"),  # iouring-register, 2 VMAs
    "cow.iouring-register-ok.ext4-private": ("XFAIL", "PASS", "PASS"),  # iouring-register
    "cow.iouring-register-efault.ext4-shared": ("XFAIL", "PASS", "PASS"),  # iouring-register: errno
    "cow.iouring-register-refused.ext4-shared": ("PASS", "PASS", "PASS"),  # iouring-register: refused on all
    "cow.iouring-register-efault.perf-rb": ("XFAIL", "PASS", "PASS"),  # perf-ring-buffer: EOPNOTSUPP on 6.1
    "probe.perf-rb.data-page-write-sigbus": ("PASS", "PASS", "PASS"),  # perf-ring-buffer: SIGBUS on all
    "cow.fork.child-keeps-data.mthp-64k": ("SKIP", "PASS", "PASS"),  # mTHP from 6.8
    "cow.fork.child-keeps-data.mthp-64k-swapped": ("SKIP", "PASS", "PASS"),  # thp-mthp: the mTHP forms too
    "cow.fork-during-dio-read.parent-gets-data.base": (
        "XFAIL",
        "PASS",
        "PASS",
    ),  # dio-fork: FOLL_GET O_DIRECT
    "cow.vmsplice.unmap-in-child.hugetlb-2m": ("XFAIL", "XFAIL", "XFAIL"),  # hugetlb: never fixed
    "cow.vmsplice.unmap-in-child.thp": ("PASS", "PASS", "PASS"),  # vmsplice
    "cow.unshare.process-vm-readv.base": ("PASS", "PASS", "PASS"),  # unshare-ro-pin
    "cow.softdirty-clean.process-vm-readv.thp": (
        "PASS",
        "XFAIL",
        "XFAIL",
    ),  # split's pte_mkdirty sets sd (6.4)
    "cow.force-write.file-unchanged.memfd-private": ("PASS", "PASS", "PASS"),  # Dirty COW class
    "probe.perf-rb.vmflags-no-pfnmap": ("PASS", "PASS", "XFAIL"),  # perf-ring-buffer: pfnmap from 6.14
    "probe.perf-rb.odirect-write": ("PASS", "PASS", "XFAIL"),  # perf-ring-buffer (fails from 6.14)
    "probe.pfnmap.vvar.process-vm-readv": ("PASS", "PASS", "SKIP"),  # pfnmap-gup; not VM_PFNMAP from 7.2
    "probe.pfnmap.vvar.proc-self-mem": ("PASS", "PASS", "SKIP"),  # pfnmap-gup; same
    # pfnmap-gup on a PCI RAM BAR (ivshmem): GUP refuses, remote access goes through generic_access_phys.
    "probe.pfnmap.pci-bar.process-vm-readv": ("PASS", "PASS", "PASS"),  # EFAULT
    "probe.pfnmap.pci-bar.proc-self-mem-write": ("PASS", "PASS", "PASS"),
    "probe.pfnmap.pci-bar.ptrace-peekdata": ("PASS", "PASS", "PASS"),
    "cow.collapse.after-fork-shared.thp-pte": ("SKIP", "SKIP", "PASS"),  # thp-collapse: no writable PTE <6.18
    "cow.collapse.after-fork-upper-shared.thp-pte": ("PASS", "PASS", "PASS"),  # thp-collapse
    "cow.ksm.unshare.process-vm-readv.base": ("PASS", "PASS", "PASS"),  # ksm-pinned: never exclusive
    "cow.ksm.pin-ro.other-write-unseen.base": ("PASS", "PASS", "SKIP"),  # harness_pin; none for 7.3 here
    # Long-term pins on stock kernels: harness_pin (built for Debian 12's kernels; not for 7.3 on a
    # gcc-12 host) and RDMA registrations on soft-RoCE (ro-longterm-private, 6.1 vs 6.12).
    "cow.gup-pin-ro.private-mapping.memfd-private": ("XFAIL", "PASS", "SKIP"),  # ro-longterm-private
    "cow.gup-fast-longterm.rw-pin.ext4-shared": ("XFAIL", "PASS", "SKIP"),  # longterm-file-write (6.5)
    "cow.gup-pin-ro.exclusive.base": ("PASS", "PASS", "SKIP"),
    "cow.rdma-ro.write.zeropage": ("PASS", "PASS", "PASS"),  # FOLL_WRITE on 6.1
    "cow.rdma-ro.soft-dirty.base": ("XFAIL", "PASS", "PASS"),  # b40656aa7d55
    "cow.rdma-ro.uffd-wp.base": ("XFAIL", "PASS", "PASS"),  # b40656aa7d55
    "cow.rdma-ro.ro-mapping.memfd-shared": ("XFAIL", "PASS", "PASS"),  # b40656aa7d55
    "cow.rdma-rw.shared.ext4-shared": ("XFAIL", "PASS", "PASS"),  # longterm-file-write (6.5)
}
LINES = {"6.1": 0, "6.12": 1, "7.3": 2}


def all_ids() -> list[str]:
    return [i for p in suites.programs(["cow", "probes"]) for i in suites.list_ids(p)]


# The whole suite runs on the default kernel. On the old and the new line the run leaves out what
# repeats code paths the default kernel's run went through, to keep CI within its time:
#  - the mTHP forms of every size but 64k (one folio order stands for the others; 6.1 SKIPs them
#    all by rule, 7.3 runs 64k's);
#  - the 1 GiB hugetlb cases (10-25 s each under TCG). On >= 6.17 they also have a known flake
#    (README, "Known flake": a fork child of a 1 GiB hugetlb area now and then reads zeros; seen on
#    6.17.13, 6.18.15 and 7.3.4, never on 6.1, 6.12 or 6.16).
# These tests judge the harness; ci/nightly.sh runs the whole kernel line with every case, where
# the flake is reported, not hidden.
SLICED = {TEST_KERNEL_OLD, TEST_KERNEL_NEW}
MTHP_KEPT = "mthp-64k"


def sliced_out(case_id: str) -> bool:
    memory = case_id.rsplit(".", 1)[-1]
    mthp_other_size = memory.startswith("mthp-") and not memory.startswith(MTHP_KEPT)
    return mthp_other_size or case_id.endswith(HUGETLB_1G_SUFFIXES)


# FAILs now and then in a whole run on 6.12 (the page is not exclusive after the registration),
# PASSes alone: order-dependent, not understood yet (README, "Known flake"). Left out here so the
# harness's own tests stay decisive; a user's `harness run` still runs and reports it.
UNEXPLAINED = {"cow.iouring-register-ok.hugetlb-memfd-1g-private"}


def expected_ids(kernel: str) -> list[str]:
    ids = [i for i in all_ids() if i not in UNEXPLAINED]
    return [i for i in ids if not sliced_out(i)] if kernel in SLICED else ids


@pytest.fixture(scope="module", params=[TEST_KERNEL, TEST_KERNEL_OLD, TEST_KERNEL_NEW])
def full_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("run")
    select = [a for i in expected_ids(request.param) for a in ("--filter", i)]
    run = harness_run(out, "--kernel", request.param, "--junit", str(out / "copy.xml"), *select)
    run.kernel = request.param
    return run


def test_whole_matrix_runs_with_no_unexpected_verdict(full_run: Run) -> None:
    assert full_run.rc == 0, full_run.stderr[-2000:]
    v = full_run.verdicts()
    assert sorted(v) == sorted(expected_ids(full_run.kernel))
    assert set(v.values()) <= {"PASS", "SKIP", "XFAIL"}
    # The first slice passes everywhere, except where the kernel line is known to differ
    # ([vvar] is not VM_PFNMAP from 7.2: its probes SKIP there, by rule).
    line = LINES[".".join(full_run.fingerprint()["kernel"]["version"].split(".")[:2])]
    differs = {i for i, d in DIFFERENCES.items() if d[line] != "PASS"}
    assert all(v[i] == "PASS" for i in SLICE_IDS - differs)


def test_kernel_versions_differ_as_observed(full_run: Run) -> None:
    line = ".".join(full_run.fingerprint()["kernel"]["version"].split(".")[:2])
    series = LINES[line]
    v = full_run.verdicts()
    assert {i: v[i] for i in DIFFERENCES} == {i: d[series] for i, d in DIFFERENCES.items()}


def test_guest_environment_is_recorded(full_run: Run) -> None:
    g = full_run.fingerprint()["guest"]
    assert g["scratch_fs"] == "ext4" and g["swap_devices"] == "1" and g["nr_hugepages"] == "16"
    assert g["debugfs"] == "yes"
    # The whole suite has *.hugetlb-1g cases: two boot-time 1 GiB pages beside the 2 MiB pool.
    asked = hugepages.plan(expected_ids(full_run.kernel), None).hugepages_1g  # 3 with the 1 GiB private memfd
    assert full_run.fingerprint()["machine"]["hugepages_1g_asked"] == asked
    assert g["hugepages_1g"] == str(asked)
    # cow_rdma ran: the guest had its soft-RoCE device; cow_gup's pinner (no gup_test on Debian)
    assert g["rdma"] == "rxe0" and g["rdma_why"] == ""
    debian13 = int(full_run.fingerprint()["kernel"]["version"].split(".")[0]) >= 7
    if debian13:  # 7.3: a gcc-14 kernel, a gcc-12 host: no module, and the reason recorded
        assert g["pinner"] == "none" and "gcc-14" in g["harness_pin_why"]
    else:
        assert g["pinner"] == "module" and g["harness_pin"] == "yes" and g["gup_test"] == "no"
        # its taint (O: out of tree; E too where modules are signed) is the baseline, not a case's
        assert int(g["tainted"]) & 1 << 12
        assert "kernel taint changed" not in (full_run.out / "output" / "cow_gup.ktap").read_text()
        assert " 0 disagree" in (full_run.out / "crosscheck.txt").read_text()


def test_junit_names_every_case_and_records_the_machine(full_run: Run) -> None:
    root = full_run.junit()
    cases = [str(c.get("name")) for c in root.iter("testcase")]
    assert sorted(cases) == sorted(expected_ids(full_run.kernel))
    assert {s.get("name") for s in root.iter("testsuite")} >= {
        "cow_fork",
        "cow_vmsplice",
        "cow_iouring",
        "pfnmap_vvar",
        "pfnmap_pci",
    }
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    fp = full_run.fingerprint()
    assert props["accel"] == fp["machine"]["accel"] in ("kvm", "tcg")
    assert props["kernel.release"] == fp["guest"]["kernel"]  # the kernel that booted is the one resolved
    assert (full_run.out / "copy.xml").read_text() == (full_run.out / "junit.xml").read_text()


def test_run_dir_keeps_everything(full_run: Run) -> None:
    for name in (
        "console.log",
        "dmesg.log",
        "qemu-argv.json",
        "kernel-config",
        "results.jsonl",
        "summary.txt",
        "initramfs.cpio",
    ):
        assert (full_run.out / name).stat().st_size > 0, name
    argv = json.loads((full_run.out / "qemu-argv.json").read_text())
    assert argv[0].endswith("qemu-system-x86_64")
    # The console log holds what QEMU printed; dmesg.log the kernel's whole log, banner included.
    assert b"harness: boot attempt" in (full_run.out / "console.log").read_bytes()
    assert (
        b"Linux version " + full_run.fingerprint()["guest"]["kernel"].encode()
        in (full_run.out / "dmesg.log").read_bytes()
    )
    assert "harness:" in full_run.stdout and " 0 failed" in full_run.stdout


def test_hugetlb_1g_cases_run_on_boot_time_pages(tmp_path: Path) -> None:
    """*.hugetlb-1g cases get a 5 GiB guest with hugepagesz=1G hugepages=2: they run (two fork
    cases, ~40 s each under TCG: the kernel clears and copies a whole GiB), not SKIP."""
    run = harness_run(tmp_path / "out", "--kernel", TEST_KERNEL, "--filter", "cow.fork.*.hugetlb-1g")
    assert run.rc == 0, run.stderr[-2000:]
    assert run.verdicts() == {
        "cow.fork.child-keeps-data.hugetlb-1g": "PASS",
        "cow.fork.parent-keeps-data.hugetlb-1g": "PASS",
    }
    cases = list(run.junit().iter("testcase"))
    assert len(cases) == 2 and not [c for c in cases if c.find("skipped") is not None]
    fp = run.fingerprint()
    assert fp["request"]["memory_mib"] is None  # not given: the harness sized the guest
    assert fp["machine"]["memory_mib"] == 5120 and fp["machine"]["hugepages_1g_asked"] == 2
    assert fp["guest"]["hugepages_1g"] == "2" and fp["guest"]["nr_hugepages"] == "16"
    argv = json.loads((run.out / "qemu-argv.json").read_text())
    assert argv[argv.index("-m") + 1] == "5120M"
    assert "hugepagesz=1G hugepages=2" in argv[argv.index("-append") + 1]


def test_hugetlb_memfd_1g_cases_get_the_boot_time_pages_too(tmp_path: Path) -> None:
    """A 1 GiB hugetlb memfd (MFD_HUGE_1GB) case alone sizes the guest for the 1 GiB pages: three
    for a MAP_PRIVATE mapping (the file's page, the owner's reservation, a child's COW copy)."""
    run = harness_run(
        tmp_path / "out",
        "--kernel",
        TEST_KERNEL,
        "--filter",
        "cow.fork.parent-keeps-data.hugetlb-memfd-1g-private",
        "--filter",
        "cow.fork.shared-write-visible.hugetlb-memfd-1g-shared",
    )
    assert run.rc == 0, run.stderr[-2000:]
    assert run.verdicts() == {
        "cow.fork.parent-keeps-data.hugetlb-memfd-1g-private": "PASS",
        "cow.fork.shared-write-visible.hugetlb-memfd-1g-shared": "PASS",
    }
    fp = run.fingerprint()
    assert fp["machine"]["memory_mib"] == 6144 and fp["machine"]["hugepages_1g_asked"] == 3
    assert fp["guest"]["hugepages_1g"] == "3"


@pytest.mark.parametrize("kernel,want", [(TEST_KERNEL_OLD, "XFAIL"), (TEST_KERNEL, "PASS")])
def test_dio_read_in_flight_across_fork(tmp_path: Path, kernel: str, want: str) -> None:
    """docs/semantics.md#dio-fork on a dm-delay device (loop and dm_delay come with the disk modules): the read is in
    flight when fork returns (else the case SKIPs, unexpected here) and lands in the parent's page
    from 6.5 (FOLL_PIN), in the page the child keeps on 6.1 (FOLL_GET)."""
    run = harness_run(tmp_path / "out", "--kernel", kernel, "--filter", "cow.fork-during-dio-read.*")
    assert run.rc == 0, run.stderr[-2000:]
    assert run.verdicts() == {
        f"cow.fork-during-dio-read.parent-gets-data.{m}": want for m in ("base", "thp", "hugetlb-2m")
    }


def test_unexpected_verdict_exits_1(tmp_path: Path) -> None:
    """An expectation of failure on a case that passes is an XPASS, which is unexpected: exit 1."""
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "version: 1\nrules:\n"
        "  - match: cow.fork.child-keeps-data.base\n    expect: fail\n"
        "    reason: deliberately wrong, to see XPASS\n"
    )
    # Base pages only: this file has no skip rules, so any case that skips would be ERROR too.
    run = harness_run(
        tmp_path / "out", "--kernel", TEST_KERNEL, "--filter", "cow.fork*.base", "--expectations", str(exp)
    )
    assert run.rc == 1, run.stderr[-2000:]
    v = run.verdicts()
    assert v.pop("cow.fork.child-keeps-data.base") == "XPASS"
    assert v and all(i.startswith("cow.fork") for i in v)
    assert set(v.values()) == {"PASS"}


def test_ctrl_c_mid_run_still_writes_a_complete_report(tmp_path: Path) -> None:
    """SIGINT while a program runs in the guest: exit 130, JUnit valid, nothing silently lost."""
    import signal
    import time

    out = tmp_path / "out"
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
            "--suite",
            "cow",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stderr is not None
    for line in p.stderr:  # wait until the first program is running in the guest
        if "running cow_" in line:
            break
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    rest, _ = p.communicate(timeout=120)
    assert p.returncode == 130
    root = ET.parse(out / "junit.xml").getroot()
    names = [c.get("name") for c in root.iter("testcase")]
    cow_ids = {i for i in all_ids() if i.startswith("cow.")}
    assert set(names) == cow_ids and len(names) == len(cow_ids)
    errors = [c for c in root.iter("testcase") if c.find("error") is not None]
    assert errors, "the interrupted cases must be ERROR"
    assert all("interrupted" in (c.find("error").get("message") or "") for c in errors)  # type: ignore[union-attr]
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(cow_ids)
    assert (out / "console.log").stat().st_size > 0


def test_ssh_transport_gives_the_same_verdicts(tmp_path: Path, full_run: Run) -> None:
    """The same cases over SSH (dropbear in the guest) as over the console in full_run."""
    if not full_run.fingerprint()["kernel"]["version"].startswith("6.12."):
        pytest.skip("once is enough: run on the 6.12 kernel only")
    filters = ["cow.fork*.base", "cow.iouring-register*ext4*", "probe.*"]
    args = ["--kernel", TEST_KERNEL, "--transport", "ssh"]
    for f in filters:
        args += ["--filter", f]
    run = harness_run(tmp_path / "ssh", *args)
    assert run.rc == 0, run.stderr[-2000:]
    assert run.fingerprint()["request"]["transport"] == "ssh"
    over_ssh = run.verdicts()
    assert over_ssh and over_ssh == {i: full_run.verdicts()[i] for i in over_ssh}
    assert b"harness: ok " in (run.out / "console.log").read_bytes()  # markers still on the console
