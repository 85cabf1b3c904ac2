#!/usr/bin/env python3
"""The harness's fault drill: real guest failures, to prove that none of them loses a result.

Not a default suite (`harness run --suite faults`). Each case is an ordinary test program case
(same contract as cow_tests/ and the probes), so the harness handles it as it would a real bug:
  fault.ok-before      passes; must be reported PASS whatever happens after it
  fault.hang-userspace sleeps forever; the harness's limit must kill it and go on
  fault.kernel-report  freezes the ext4 scratch fs and blocks a writer on it until the kernel's
                       hung-task detector prints its report; the case itself passes, and the
                       harness must turn it into a FAIL carrying that report
  fault.kernel-warn    loads a tiny module (guest/faults/warn_module, built by the harness
                       against this kernel's headers) and makes it WARN(): a real kernel
                       WARNING on a stock kernel, which must turn the passing case into a FAIL
  fault.cpu-hog        SCHED_FIFO spinners on every CPU with RT throttling off: the guest stops
                       answering; the harness must ask for backtraces, kill it, reboot, go on
  fault.panic          sysrq-c: the kernel panics; the harness must reboot and go on
  fault.ok-after       passes; must run (in a fresh guest) and be reported PASS
"""

import fcntl
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "probes"))

import _ktap  # noqa: E402
from _ktap import diag, ok, skip  # noqa: E402

FIFREEZE = 0xC0045877  # _IOWR('X', 119, int)
FITHAW = 0xC0045878  # _IOWR('X', 120, int)
HUNG_TIMEOUT = "/proc/sys/kernel/hung_task_timeout_secs"


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def ok_case() -> _ktap.Outcome:
    return ok("nothing to see")


def hang_userspace() -> _ktap.Outcome:
    diag("sleeping until killed")
    time.sleep(24 * 3600)
    return ok("woke up?")


def kernel_report() -> _ktap.Outcome:
    scratch = os.environ.get("COW_EXT4_DIR", "")
    if not scratch or not os.path.exists(HUNG_TIMEOUT):
        return skip("needs COW_EXT4_DIR and CONFIG_DETECT_HUNG_TASK")
    with open(HUNG_TIMEOUT) as f:
        old = f.read().strip()
    _write(HUNG_TIMEOUT, "1")
    fd = os.open(scratch, os.O_RDONLY)
    fcntl.ioctl(fd, FIFREEZE, 0)
    diag(f"froze {scratch}; a child now writes to it and blocks uninterruptibly")
    child = os.fork()
    if child == 0:
        with open(os.path.join(scratch, "blocked-writer"), "w") as f:
            f.write("x")
        os._exit(0)
    try:
        time.sleep(4)  # > 3 x hung_task_timeout_secs: khungtaskd checks every timeout period
    finally:
        fcntl.ioctl(fd, FITHAW, 0)
        os.close(fd)
        os.waitpid(child, 0)
        _write(HUNG_TIMEOUT, old)
    return ok("the writer finished after the thaw")


WARN_MODULE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "harness_warn.ko")


WHY_NO_MODULE = WARN_MODULE + ".why"  # the host's reason, when it could not build the module


def kernel_warn() -> _ktap.Outcome:
    if not os.path.exists(WARN_MODULE):
        try:
            with open(WHY_NO_MODULE) as f:
                why = f.read().strip()
        except OSError:
            why = "the host has no headers for this kernel"
        return skip(f"no harness_warn.ko: {why}")
    r = subprocess.run(["insmod", WARN_MODULE], capture_output=True, text=True)
    if r.returncode != 0:
        return skip(f"insmod harness_warn.ko failed: {r.stderr.strip()}")
    try:
        _write("/proc/harness_warn", "1")
        diag("wrote /proc/harness_warn: the kernel printed a WARNING")
    finally:
        subprocess.run(["rmmod", "harness_warn"], capture_output=True)
    return ok("the module returned normally")


def cpu_hog() -> _ktap.Outcome:
    _write("/proc/sys/kernel/sched_rt_runtime_us", "-1")
    # From 6.12 a deadline server still gives fair tasks 50 ms a second despite RT hogs:
    # switch it off too, so the guest really stops answering.
    servers = "/sys/kernel/debug/sched/fair_server"
    if os.path.isdir(servers):
        for cpu in sorted(os.listdir(servers)):
            try:
                _write(os.path.join(servers, cpu, "runtime"), "0")
            except OSError as e:
                diag(f"{servers}/{cpu}/runtime: {e}")
    diag(f"spinning SCHED_FIFO on {os.cpu_count()} CPUs")
    sys.stdout.flush()
    for cpu in range(os.cpu_count() or 1):
        if os.fork() == 0:
            os.sched_setaffinity(0, {cpu})
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
            while True:
                pass
    time.sleep(24 * 3600)
    return ok("the guest kept answering?")


def panic() -> _ktap.Outcome:
    diag("echo c > /proc/sysrq-trigger")
    sys.stdout.flush()
    _write("/proc/sysrq-trigger", "c")
    return ok("still alive?")


CASES = [
    _ktap.Case("fault.ok-before", ok_case, "an ordinary passing case"),
    _ktap.Case("fault.hang-userspace", hang_userspace, "a test that never returns"),
    _ktap.Case("fault.kernel-report", kernel_report, "a test during which the kernel reports a hung task"),
    _ktap.Case("fault.kernel-warn", kernel_warn, "a test during which the kernel WARNs"),
    _ktap.Case("fault.cpu-hog", cpu_hog, "a test that starves the whole guest"),
    _ktap.Case("fault.panic", panic, "a test that panics the kernel"),
    _ktap.Case("fault.ok-after", ok_case, "an ordinary passing case after all that"),
]

if __name__ == "__main__":
    sys.exit(_ktap.main(CASES))
