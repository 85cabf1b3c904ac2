#!/usr/bin/env python3
"""Boot-to-first-test and whole-run time: `harness run` vs a bare static-init run, side by side.

The bare run boots the same kernel with the same accelerator and kernel command line, from an
initramfs holding only busybox, a 10-line init and the same static cow_tests binaries; it runs
them and powers off. Runs alternate (bare, harness, bare, harness...) so machine noise hits both.
Prints medians and ratios. Usage: bench/boot.py [--kernel SPEC] [--rounds N] [--suite cow]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.kernels import kernel
from harness.suites import registry as suites  # noqa: E402
from harness.vm import cpio, disks, image, machine, qemu

# The same environment the tests get under the harness (modules, ext4 scratch disk, swap,
# hugetlb pages), with nothing else: no agent, no markers, no fingerprint, no dmesg.
BARE_INIT = b"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
while read -r ko; do insmod /lib/modules/$ko; done < /etc/harness/modules
mkdir -p /mnt/ext4 && mount -t ext4 /dev/vda /mnt/ext4 && export COW_EXT4_DIR=/mnt/ext4
swapon /dev/vdb
echo 16 > /proc/sys/vm/nr_hugepages
export COW_TMPDIR=/tmp
echo BARE-FIRST-TEST $(cut -d' ' -f1 /proc/uptime)
for t in /tests/*; do "$t"; done
echo BARE-DONE $(cut -d' ' -f1 /proc/uptime)
poweroff -f
"""


def bare_initramfs(k: kernel.Kernel, progs: list[suites.Program], out: Path) -> None:
    bb = Path("/bin/busybox")
    ents = [
        cpio.Entry.dir(d)
        for d in ("bin", "proc", "sys", "tmp", "dev", "tests", "etc", "etc/harness", "lib", "mnt")
    ]
    ents.append(cpio.Entry.file("bin/busybox", bb.read_bytes(), 0o755))
    ents += [
        cpio.Entry.symlink(f"bin/{a}", "busybox")
        for a in ("sh", "mount", "cut", "echo", "poweroff", "insmod", "mkdir", "swapon")
    ]
    wanted = image.VIRTIO_MODULES + image.DISK_MODULES
    mods, _ = image.module_entries(k, wanted)
    ents += [e for e in mods if e.path != "lib"]
    ents.append(cpio.Entry.file("init", BARE_INIT, 0o755))
    ents += [cpio.Entry.file(f"tests/{p.name}", p.host_path.read_bytes(), 0o755) for p in progs]
    out.write_bytes(cpio.archive(ents))


def bare_run(k: kernel.Kernel, initrd: Path, accel: str, tmp: Path) -> tuple[float, float]:
    spec = qemu.QemuSpec(
        qemu=image.require_qemu(),
        kernel=k.bzimage,
        initrd=initrd,
        cmdline=machine.cmdline(),
        accel=accel,
        drives=disks.make(tmp),
    )
    t0 = time.monotonic()
    first = None
    p = subprocess.Popen(
        qemu.argv(spec), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    assert p.stdout is not None
    for line in p.stdout:
        if b"BARE-FIRST-TEST" in line and first is None:
            first = time.monotonic() - t0
    p.wait()
    return (first or float("nan")), time.monotonic() - t0


def harness_run(spec: str, suite: str, out: Path, accel: str) -> tuple[float, float, str]:
    t0 = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            "--kernel",
            spec,
            "--suite",
            suite,
            "--out",
            str(out),
            "--accel",
            accel,
        ],
        capture_output=True,
        check=False,
    )
    total = time.monotonic() - t0
    fp = json.loads((out / "fingerprint.json").read_text())
    return fp["boot_to_first_test_s"], total, fp["machine"]["accel"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", default="debian:6.12")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--suite", default="cow")
    a = ap.parse_args()
    k = kernel.resolve(a.kernel)
    progs = suites.programs([a.suite])
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        bare_initramfs(k, [p for p in progs if not p.guest_interp], t / "bare.cpio")
        # Same accelerator for both: whatever the harness ends up using on this host.
        accel = harness_run(a.kernel, a.suite, t / "warm", "auto")[2]
        rows: dict[str, list[tuple[float, float]]] = {"bare": [], "harness": []}
        for i in range(a.rounds):
            rows["bare"].append(bare_run(k, t / "bare.cpio", accel, t))
            first, total, _ = harness_run(a.kernel, a.suite, t / f"h{i}", accel)
            rows["harness"].append((first, total))
    med = {
        n: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for n, v in rows.items()
    }
    print(f"kernel {k.release}, accel {accel}, suite {a.suite}, {a.rounds} rounds (medians)")
    print(f"{'':10s} {'first test':>12s} {'whole run':>12s}")
    for n, (f, w) in med.items():
        print(f"{n:10s} {f:11.2f}s {w:11.2f}s")
    print(
        f"{'ratio':10s} {med['harness'][0] / med['bare'][0]:11.2f}x {med['harness'][1] / med['bare'][1]:11.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
