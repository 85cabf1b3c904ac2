"""slow (nightly): `harness bisect --kernels` across Debian suites finds where the perf ring buffer
became a pfnmap (b709eb872e19 "perf: map pages in advance", 6.14).

The packages between 6.12.118 (bookworm-security) and 7.3.4 (trixie-backports) are walked in
upstream version order across every suite of the harness's apt state; 6.19, 7.0 and 7.1 are
left out (no modules in the archive: no 9p, so no probes). Debian has no 6.14 or 6.15 package,
so the first package with a pfnmap ring buffer is 6.16.3. Each step downloads a ~170 MB kernel
the first time and boots it under TCG with the probes: about 6 steps, 5-10 minutes.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.vm]

TEST = "probe.perf-rb.vmflags-no-pfnmap"


def test_bisect_across_suites_finds_the_pfnmap_ring_buffer(tmp_path: Path) -> None:
    out = tmp_path / "b"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "bisect",
            "--kernels",
            "debian:6.12.118..debian:7.3.4",
            "--test",
            TEST,
            "--suite",
            "probes",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "first bad: debian:6.16.3+deb13" in p.stdout, p.stdout
    state = json.loads((out / "bisect.json").read_text())
    candidates = state["candidates"] if "candidates" in state else None
    n = len(candidates) if candidates else 14
    assert len(state["steps"]) <= math.ceil(math.log2(n)) + 2
    assert state["answer"]["first"] == ["debian:6.16.3+deb13"]
