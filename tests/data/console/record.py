"""Re-record the console transcripts here from a real boot: python tests/data/console/record.py

Runs the steps of test_transport_framing.SESSIONS on a real guest (kernel HARNESS_TEST_KERNEL,
default debian:6.12, cached under XDG_CACHE_HOME) and saves, per session, the exact bytes QEMU
printed while they ran (the run dir's console.log, sliced), as NAME.log.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # tests/, for test_transport_framing and fakes

from harness.vm import image
from harness.kernels import kernel
from harness.vm import machine  # noqa: E402
from tests.unit.test_transport_framing import SESSIONS, play  # noqa: E402


def main() -> int:
    k = kernel.resolve(os.environ.get("HARNESS_TEST_KERNEL", "debian:6.12"), print)
    run_dir = Path(tempfile.mkdtemp(prefix="record-console-"))
    img = image.build(k, image.Payload(), image.GuestOptions(nonce=secrets.token_hex(6)),
                      run_dir / "initramfs.cpio")
    m = machine.boot(machine.MachineSpec(kernel=k, image=img, run_dir=run_dir), print)
    log = run_dir / "console.log"
    bad = 0
    try:
        for name, steps in SESSIONS.items():
            start = log.stat().st_size
            got = play(m.console, steps)
            data = log.read_bytes()[start:]
            want = [s.expect for s in steps]
            ends = len(set(re.findall(rb"(\S+):E:-?\d+:[0-9a-f]{32}", data)))  # each end line comes twice
            print(f"{name}: {len(data)} bytes, {ends} replies for {len(steps)} steps")
            if got != want:
                print(f"  MISMATCH: {got!r:.300}\n  expected {want!r:.300}")
                bad += 1
                continue
            if name == "printk" and ends == len(steps):
                print("  no reply was corrupted this time (no __resend__): not saved, run again")
                bad += 1
                continue
            (HERE / f"{name}.log").write_bytes(data)
    finally:
        m.shutdown()
    print(f"run dir: {run_dir}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
