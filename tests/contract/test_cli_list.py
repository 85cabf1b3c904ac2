"""`harness run --list`: each selected id with its expectation on the chosen kernel, `skip`
included, without booting anything (a synthetic bzImage: no .config, so every option is unset)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.paths import REPO
from tests.helpers.synthetic_bzimage import make_bzimage

RULES = """\
version: 1
rules:
  - match: "probe.perf-rb.*"
    expect: skip
    config: {CONFIG_PERF_EVENTS: n}
    reason: "no perf events in this kernel"
    commit: "none: CONFIG_PERF_EVENTS"
"""


def test_list_shows_skip_where_a_rule_says_why(tmp_path: Path) -> None:
    bz = tmp_path / "vmlinuz-synthetic"
    bz.write_bytes(make_bzimage())
    rules = tmp_path / "exp.yaml"
    rules.write_text(RULES)
    env = dict(
        os.environ,
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            "--list",
            "--suite",
            "probes",
            "--kernel",
            str(bz),
            "--expectations",
            str(rules),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    listed = {line.split()[0]: line.split(None, 1)[1] for line in p.stdout.splitlines() if line.strip()}
    perf = [i for i in listed if i.startswith("probe.perf-rb.")]
    assert perf and all(listed[i] == "skip  # no perf events in this kernel" for i in perf)
    assert all(listed[i] == "pass" for i in listed if i not in perf)
