"""Job mains for Scheduler tests: stand-ins for a run that boots nothing. Module level, because
the scheduler spawns its processes (they import this module by name)."""

from __future__ import annotations

import json
import os
import time
from multiprocessing.connection import Connection

from harness.run.matrix import Job


def _record(job: Job, verdict: str, reason: str = "") -> None:
    out = job.request.out
    assert out is not None
    out.mkdir(parents=True, exist_ok=True)
    rec = {
        "id": "case.a",
        "program": "p",
        "verdict": verdict,
        "reason": reason,
        "output": "",
        "expectation": {"expect": "pass"},
    }
    (out / "results.jsonl").write_text(json.dumps(rec) + "\n")


def sleepy(job: Job, conn: Connection) -> None:
    """Sleeps timeout_s, records when it ran."""
    os.setpgrp()
    t0 = time.time()
    time.sleep(job.request.timeout_s or 0.0)
    _record(job, "PASS")
    assert job.request.out is not None
    (job.request.out / "span").write_text(f"{t0} {time.time()}")
    conn.send((0, "", time.time() - t0))


def interruptible(job: Job, conn: Connection) -> None:
    """Waits for Ctrl-C (forwarded by the scheduler), then reports like an interrupted run."""
    os.setpgrp()
    assert job.request.out is not None
    job.request.out.mkdir(parents=True, exist_ok=True)
    (job.request.out / "started").write_text("")
    try:
        time.sleep(60)
        conn.send((0, "", 60.0))
    except KeyboardInterrupt:
        _record(job, "ERROR", "not run: interrupted (Ctrl-C)")
        conn.send((130, "interrupted", 0.1))


def dies(job: Job, conn: Connection) -> None:
    os._exit(3)
