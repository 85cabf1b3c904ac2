"""Re-record the real kernel reports here: python tests/data/kmsg/record.py [splats|hung]

Boots a Debian kernel (HARNESS_TEST_KERNEL, default debian:6.12; cached under XDG_CACHE_HOME)
under QEMU and makes it print real reports, then leaves the whole console.log in a temporary
run directory (printed at the end). The files here are byte-exact line ranges cut from such
logs (see README.md); cut them again by hand, keeping each under ~30 KB.

- splats: builds kmsgsplat.c against /usr/src/linux-headers-<release> (apt-get install
  linux-headers-<release>), loads it (unsigned: taints O and E) and writes each trigger to
  /proc/kmsgsplat between harness markers; ends with panic_on_oops=1 and a NULL dereference.
- hung: a write blocked on a frozen ext4 scratch disk (hung task), sysrq-w, sysrq-l (NMI
  backtraces: not reports), then sysrq-c (panic).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pexpect

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent.parent))

from harness.vm import disks
from harness.vm import image
from harness.kernels import kernel
from harness.vm import machine  # noqa: E402

TRIGGERS = ["warn", "warn_on", "bug", "null", "gpf", "paging", "atomic", "kfence", "redzone",
            "spin 14", "irqspin 14"]
FREEZE = 'import fcntl,os; fcntl.ioctl(os.open("/mnt/ext4", os.O_RDONLY), {}, 0)'


def build_module(release: str, out: Path) -> Path:
    shutil.copy(HERE / "kmsgsplat.c", out / "kmsgsplat.c")
    (out / "Makefile").write_text("obj-m := kmsgsplat.o\n")
    subprocess.run(["make", "-C", f"/usr/src/linux-headers-{release}", f"M={out}", "modules"],
                   check=True)
    return out / "kmsgsplat.ko"


def splats(k: kernel.Kernel, run_dir: Path) -> machine.Machine:
    ko = build_module(k.release, run_dir)
    img = image.build(k, image.Payload(files={"kmsgsplat.ko": ko}),
                      image.GuestOptions(nonce=secrets.token_hex(6)), run_dir / "initramfs.cpio")
    m = machine.boot(machine.MachineSpec(
        kernel=k, image=img, run_dir=run_dir,
        append="loglevel=7 kfence.sample_interval=5 slub_debug=FZ,kmalloc-64"), print)
    m.console.run("insmod /harness/kmsgsplat.ko; echo 2 > /proc/sys/kernel/watchdog_thresh; "
                  "echo 3 > /sys/module/rcupdate/parameters/rcu_cpu_stall_timeout", 60)
    m.console.run('echo "harness: begin kmsgsplat" > /dev/kmsg', 30)
    for n, what in enumerate(TRIGGERS, start=1):
        # In a child shell: an oops kills the process that wrote the trigger.
        m.console.run(f"sh -c 'echo {what} > /proc/kmsgsplat'; sleep 2; "
                      f"echo \"harness: ok {n} splat.{what.split()[0]}\" > /dev/kmsg", 240)
    m.console.run('echo "harness: end kmsgsplat rc=0 tainted=$(cat /proc/sys/kernel/tainted)"'
                  " > /dev/kmsg", 30)
    m.console.run('echo "harness: begin crashprog" > /dev/kmsg; '
                  'echo "harness: ok 1 crash.before" > /dev/kmsg; '
                  "echo 1 > /proc/sys/kernel/panic_on_oops", 30)
    m.console.send_only("sh -c 'echo null > /proc/kmsgsplat'")
    return m


def hung(k: kernel.Kernel, run_dir: Path) -> machine.Machine:
    ext4, swap = disks.make(run_dir)
    img = image.build(k, image.Payload(), image.GuestOptions(nonce=secrets.token_hex(6), disk=True),
                      run_dir / "initramfs.cpio")
    m = machine.boot(machine.MachineSpec(kernel=k, image=img, run_dir=run_dir,
                                         append="loglevel=7", drives=(ext4, swap)), print)
    m.console.run("echo 1 > /proc/sys/kernel/sysrq; echo 3 > /proc/sys/kernel/hung_task_timeout_secs; "
                  'echo "harness: begin probe" > /dev/kmsg; echo "harness: ok 1 kmsg.sample.first" > /dev/kmsg', 60)
    m.console.run(f"python3 -c '{FREEZE.format(0xC0045877)}'", 60)  # FIFREEZE
    m.console.run("sh -c 'echo x > /mnt/ext4/f' </dev/null >/dev/null 2>&1 &", 30)
    time.sleep(25)
    m.console.run("echo w > /proc/sysrq-trigger", 60)
    time.sleep(5)
    m.console.run(f"python3 -c '{FREEZE.format(0xC0045878)}'", 60)  # FITHAW
    m.console.run('echo "harness: not ok 2 kmsg.sample.hung" > /dev/kmsg; echo l > /proc/sysrq-trigger; '
                  'sleep 3; echo "harness: ok 3 kmsg.sample.nmi # SKIP not a splat" > /dev/kmsg', 60)
    m.console.send_only("echo c > /proc/sysrq-trigger")
    return m


def main() -> int:
    session = sys.argv[1] if len(sys.argv) > 1 else "splats"
    k = kernel.resolve(os.environ.get("HARNESS_TEST_KERNEL", "debian:6.12"), print)
    run_dir = Path(tempfile.mkdtemp(prefix=f"record-kmsg-{session}-"))
    m = (hung if session == "hung" else splats)(k, run_dir)
    try:
        m.child.expect(pexpect.EOF, timeout=120)  # panic=-1: QEMU exits after the panic
    except pexpect.TIMEOUT:
        print("the guest did not panic within 120 s")
    m.kill()
    print(f"console log: {run_dir / 'console.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
