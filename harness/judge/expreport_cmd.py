"""`harness expectations [RUN_DIR ...]`: read the expectations file, the runs and the suites'
case ids, and print expreport's report. All the I/O of the command is here; expreport is pure."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from pathlib import Path

from harness.errors import ConfigError, HarnessError
from harness.judge import expect, expreport
from harness.judge.expreport import ObservedCase, ObservedKernel
from harness.kernels import kconfig
from harness.model import KernelVersion
from harness.report import resultset
from harness.run.runner import DEFAULT_EXPECTATIONS
from harness.suites import registry as suites

STATIC_SUITES = ["cow", "probes", "faults"]  # the suites whose ids are fixed (kselftests' are not)
KERNEL_CONFIG = "kernel-config"  # the kernel's .config, as a run dir keeps it (runner.py)


def add_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("expectations", help="which expectation rules the runs exercised, which are stale")
    p.add_argument(
        "runs", nargs="*", type=Path, metavar="RUN_DIR", help="run or matrix dirs (none: static check only)"
    )
    p.add_argument("--expectations", type=Path, default=DEFAULT_EXPECTATIONS, metavar="FILE")
    p.add_argument("--json", action="store_true", help="write the report as JSON")


def observed(rs: resultset.ResultSet, configs: Mapping[str, Mapping[str, str]]) -> list[ObservedKernel]:
    """Each kernel of a result set with what its cases did (pure). `configs`: label -> .config."""
    out = []
    for kid in rs.kernel_ids():
        version = KernelVersion(*kid.upstream) if kid.upstream else None
        cases = tuple(
            ObservedCase(c.id, tuple(expreport.outcome_of(v, c.expect, c.reason) for v in c.verdicts))
            for c in rs.of_kernel(kid.label)
        )
        out.append(ObservedKernel(kid.label, version, configs.get(kid.label), cases))
    return out


def _configs(path: Path, rs: resultset.ResultSet) -> dict[str, Mapping[str, str]]:
    """label -> the kernel's .config, where the run dir kept one beside its fingerprint."""
    folder = path if path.is_dir() else path.parent
    where: dict[str, Path] = {}
    matrix = folder / resultset.MATRIX_FILE
    if matrix.is_file():
        try:
            data = json.loads(matrix.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}  # resultset.load already read it; nothing more to learn here
        for k in data.get("kernels", []) if isinstance(data, dict) else []:
            if isinstance(k, dict) and k.get("label") and k.get("fingerprint"):
                where[str(k["label"])] = (folder / str(k["fingerprint"])).parent / KERNEL_CONFIG
    else:
        for label in rs.kernels:
            where[label] = folder / KERNEL_CONFIG
    out: dict[str, Mapping[str, str]] = {}
    for label, f in where.items():
        try:
            out[label] = kconfig.parse(f.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            pass  # no .config kept: config conditions are not evaluated on that kernel
    return out


def known_ids(progress: Callable[[str], None]) -> list[str] | None:
    """The fixed case ids of the suites, asked of the programs on the host (builds cow_tests)."""
    try:
        return [i for p in suites.programs(STATIC_SUITES) for i in suites.list_ids(p)]
    except HarnessError as e:
        progress(f"harness: the suites' case ids are not available: {e}")
        return None


def cmd_expectations(a: argparse.Namespace, progress: Callable[[str], None]) -> int:
    rules = expect.load(a.expectations)
    try:
        text = a.expectations.read_text(encoding="utf-8")
    except OSError as e:  # pragma: no cover - expect.load just read it
        raise ConfigError(f"{a.expectations}: cannot read: {e}") from None
    kernels: list[ObservedKernel] = []
    for run in a.runs:
        rs = resultset.load(run)
        kernels += observed(rs, _configs(run, rs))
    rep = expreport.build(
        rules, expreport.comment_blocks(text), kernels, known_ids(progress), runs=[str(r) for r in a.runs]
    )
    if a.json:
        print(json.dumps(expreport.as_json(rep), indent=2))
    else:
        print(expreport.text(rep))
    return rep.exit_code
