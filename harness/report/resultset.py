"""Results read back from disk and grouped per (kernel, case): what `compare`, the matrix
report, the HTML page and the KCIDB writer work on.

A case run more than once (--repeat, or one results.jsonl holding several runs) has one
verdict per run; the summary's verdict is that verdict when they all agree and FLAKY when
they do not. Its pass rate is the share of runs that came out as expected (PASS, XFAIL or
SKIP): "pass" here means "behaved as the expectations say", which for a known kernel gap is
an XFAIL.

Everything here is pure except `load`, which reads a run directory, a matrix directory or a
bare results.jsonl.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.kernels.kernelid import KernelId, identify, in_version_order
from harness.model import Verdict
from harness.report.junit import read_results

MATRIX_FILE = "matrix.json"  # marks a matrix run directory (harness.matrix)


@dataclass(frozen=True)
class CaseSummary:
    """One case on one kernel, over every run of it."""

    kernel: str  # the kernel label: the spec the run asked for ("debian:6.12"), "" if unknown
    id: str
    program: str
    verdict: Verdict  # the runs' common verdict, or FLAKY when they differ
    verdicts: tuple[Verdict, ...]  # one per run, in run order
    reason: str  # of the first unexpected run if any, else of the first run
    output: str  # same run as reason
    kernel_events: tuple[str, ...] = ()  # kernel reports made during the case (any run)
    expect: str = "pass"
    expect_reason: str = ""
    expect_commit: str = ""
    duration_s: float = 0.0  # mean over runs

    @property
    def runs(self) -> int:
        return len(self.verdicts)

    @property
    def as_expected(self) -> int:
        return sum(1 for v in self.verdicts if not v.unexpected)

    @property
    def pass_rate(self) -> float:
        return self.as_expected / self.runs if self.runs else 0.0

    @property
    def key(self) -> tuple[str, str]:
        return (self.kernel, self.id)

    def rate_text(self) -> str:
        """ "2/3" (runs as expected / runs), or "" for a single run."""
        return f"{self.as_expected}/{self.runs}" if self.runs > 1 else ""


@dataclass(frozen=True)
class ResultSet:
    """Every case of one run, one matrix run, or one results file."""

    source: str  # what it was read from, for messages
    cases: tuple[CaseSummary, ...]
    kernels: tuple[str, ...]  # labels in run order
    fingerprints: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # label -> fingerprint.json

    def by_key(self) -> dict[tuple[str, str], CaseSummary]:
        return {c.key: c for c in self.cases}

    def of_kernel(self, kernel: str) -> list[CaseSummary]:
        return [c for c in self.cases if c.kernel == kernel]

    def kernel_ids(self) -> list[KernelId]:
        """Each kernel's identity (package, upstream version, line), in run order."""
        return [identify(k, self.fingerprints.get(k)) for k in self.kernels]

    def kernels_by_version(self) -> list[str]:
        """The labels oldest upstream version first (6.1 < 6.12 < 7.0), unknown kernels last."""
        return [k.label for k in in_version_order(self.kernel_ids())]


def aggregate_verdict(verdicts: Sequence[Verdict]) -> Verdict:
    if not verdicts:
        return Verdict.ERROR
    first = verdicts[0]
    if any(v is Verdict.FLAKY for v in verdicts) or any(v is not first for v in verdicts):
        return Verdict.FLAKY
    return first


def _verdict(value: object, where: str) -> Verdict:
    try:
        return Verdict(value)
    except ValueError:
        raise InputError(f"{where}: unknown verdict {value!r}") from None


def summarize(
    records: Iterable[Mapping[str, Any]], kernel: str = "", where: str = "results"
) -> list[CaseSummary]:
    """Group result records (results.jsonl lines) by (kernel, id), first-seen order.

    A record may carry its own "kernel" (a matrix's combined results) and its own per-run
    "verdicts" (a summary written back out); otherwise `kernel` labels it and it is one run.
    """
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for n, rec in enumerate(records, start=1):
        if not isinstance(rec, Mapping) or not isinstance(rec.get("id"), str) or "verdict" not in rec:
            raise InputError(f'{where}: record {n} is not a result (needs "id" and "verdict")')
        label = rec.get("kernel", kernel)
        groups.setdefault((str(label), rec["id"]), []).append(rec)
    return [_summary(k, i, recs, where) for (k, i), recs in groups.items()]


def _summary(kernel: str, case_id: str, recs: Sequence[Mapping[str, Any]], where: str) -> CaseSummary:
    runs: list[tuple[Verdict, Mapping[str, Any]]] = []
    for rec in recs:
        per_run = rec.get("verdicts")
        if isinstance(per_run, list) and per_run:
            runs += [(_verdict(v, where), rec) for v in per_run]
        else:
            runs.append((_verdict(rec["verdict"], where), rec))
    verdicts = tuple(v for v, _ in runs)
    # The record that explains the summary: a run that went wrong says more than one that did not.
    shown = next((rec for v, rec in runs if v.unexpected and v is not Verdict.FLAKY), recs[0])
    verdict = aggregate_verdict(verdicts)
    reason = str(shown.get("reason", ""))
    if verdict is Verdict.FLAKY and len(recs) > 1:
        reason = (
            f"{sum(not v.unexpected for v in verdicts)}/{len(verdicts)} runs as expected "
            f"({' '.join(v.value for v in verdicts)})" + (f"; {reason}" if reason else "")
        )
    exp = shown.get("expectation") or {}
    events: list[str] = []
    for rec in recs:
        events += [str(e) for e in rec.get("kernel_events", ()) if str(e) not in events]
    durations = [float(rec.get("duration_s", 0.0) or 0.0) for rec in recs]
    return CaseSummary(
        kernel=kernel,
        id=case_id,
        program=str(shown.get("program", "")),
        verdict=verdict,
        verdicts=verdicts,
        reason=reason,
        output=str(shown.get("output", "")),
        kernel_events=tuple(events),
        expect=str(exp.get("expect", "pass")),
        expect_reason=str(exp.get("reason", "")),
        expect_commit=str(exp.get("commit", "")),
        duration_s=round(sum(durations) / len(durations), 4) if durations else 0.0,
    )


def summary_record(c: CaseSummary) -> dict[str, Any]:
    """A combined results.jsonl line for a case over its runs (summarize() reads it back)."""
    return {
        "kernel": c.kernel,
        "id": c.id,
        "program": c.program,
        "verdict": c.verdict.value,
        "verdicts": [v.value for v in c.verdicts],
        "runs": c.runs,
        "pass_rate": round(c.pass_rate, 4),
        "reason": c.reason,
        "output": c.output,
        "duration_s": c.duration_s,
        "kernel_events": list(c.kernel_events),
        "expectation": {"expect": c.expect, "reason": c.expect_reason, "commit": c.expect_commit},
    }


def kernel_label(fingerprint: Mapping[str, Any]) -> str:
    """The label of a single run: the kernel spec it was asked for (resolved default included)."""
    k = fingerprint.get("kernel")
    if isinstance(k, Mapping) and k.get("spec"):
        return str(k["spec"])
    req = fingerprint.get("request")
    if isinstance(req, Mapping) and req.get("kernel"):
        return str(req["kernel"])
    return ""


# ---- reading from disk --------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a JSON object")
    return data


def _results(path: Path) -> list[dict[str, Any]]:
    try:
        return read_results(path)
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read ({e})") from None


def load(path: Path) -> ResultSet:
    """A run directory, a matrix run directory, or a results.jsonl (with its run directory's
    fingerprint.json when there is one beside it). Bad input is an InputError naming the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    folder = path if path.is_dir() else path.parent
    results = path / "results.jsonl" if path.is_dir() else path
    if not results.is_file():
        raise InputError(f"{path}: not a run directory (no results.jsonl in it)")
    if (folder / MATRIX_FILE).is_file():
        matrix = _read_json(folder / MATRIX_FILE)
        kernels = [str(k["label"]) for k in matrix.get("kernels", []) if isinstance(k, dict) and "label" in k]
        fps: dict[str, Mapping[str, Any]] = {}
        for k in matrix.get("kernels", []):
            fp = (
                folder / str(k.get("fingerprint", ""))
                if isinstance(k, dict) and k.get("fingerprint")
                else None
            )
            if fp is not None and fp.is_file():
                fps[str(k["label"])] = _read_json(fp)
            elif isinstance(k, dict) and "label" in k and (k.get("release") or k.get("version")):
                # the matrix dir copied without its per-kernel run dirs: matrix.json still says
                # which package each kernel was (written since matrices record kernel lines)
                fps[str(k["label"])] = {
                    "kernel": {
                        "spec": k["label"],
                        "release": k.get("release") or "",
                        "version": k.get("version") or "",
                    }
                }
        cases = summarize(_results(results), where=str(results))
    else:
        fp_path = folder / "fingerprint.json"
        fingerprint = _read_json(fp_path) if fp_path.is_file() else {}
        label = kernel_label(fingerprint)
        cases = summarize(_results(results), label, where=str(results))
        kernels = []
        fps = {label: fingerprint} if fingerprint else {}
    for c in cases:
        if c.kernel not in kernels:
            kernels.append(c.kernel)
    return ResultSet(str(path), tuple(cases), tuple(kernels), fps)
