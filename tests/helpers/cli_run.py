"""Running the real `harness` CLI from vm tests, and reading back what a run left on disk."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Run:
    rc: int
    out: Path
    stdout: str
    stderr: str
    kernel: str = ""  # the --kernel spec, where a test sets it

    def junit(self) -> ET.Element:
        return ET.parse(self.out / "junit.xml").getroot()

    def fingerprint(self) -> dict[str, Any]:
        return dict(json.loads((self.out / "fingerprint.json").read_text()))

    def verdicts(self) -> dict[str, str]:
        recs = [json.loads(line) for line in (self.out / "results.jsonl").read_text().splitlines()]
        return {r["id"]: r["verdict"] for r in recs}


def harness(*args: str, timeout_s: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=timeout_s
    )


def harness_run(out: Path, *args: str) -> Run:
    p = harness("run", "--out", str(out), *args)
    return Run(p.returncode, out, p.stdout, p.stderr)
