"""KCIDB I/O JSON (schema v4) for KernelCI's common results database. Pure.

One checkout and one build per kernel, one test per case, all with origin "harness". Only
properties of schema v4.0 are used and the document says version 4.0, so it is valid for every
4.x reader (checked against the kcidb-io package's schema in tests/unit/test_kcidb.py).

How our verdicts map onto KCIDB's status, which is about the tested code:
PASS -> PASS; FAIL -> FAIL; XFAIL -> FAIL with waived (a known kernel gap, not news);
XPASS -> PASS (the kernel did better than our expectation: the expectation is stale);
SKIP -> SKIP (only a skip an expectation explains: the kernel lacks the feature or option);
ERROR -> ERROR (including a skip nothing explains: the harness's environment or the kernel
went wrong, see expect.judge); FLAKY -> FAIL (it failed in some runs). The harness verdict,
pass rate and expectation ride along in `misc`.

Ids: a checkout and a build are named after the kernel itself (its package or release), so the
same kernel tested on two nights is one checkout in KCIDB; a test is named after the run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from harness.model import Verdict
from harness.report.resultset import CaseSummary, ResultSet

ORIGIN = "harness"
SCHEMA_VERSION = {"major": 4, "minor": 0}
LOG_EXCERPT_CHARS = 16384  # the schema's maxLength for log_excerpt

_STATUS = {
    Verdict.PASS: "PASS",
    Verdict.FAIL: "FAIL",
    Verdict.XFAIL: "FAIL",
    Verdict.XPASS: "PASS",
    Verdict.SKIP: "SKIP",
    Verdict.ERROR: "ERROR",
    Verdict.FLAKY: "FAIL",
}
_PATH_UNSAFE = re.compile(r"[^.a-zA-Z0-9_-]")  # the schema's test path alphabet
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._+~-]+")


def _slug(text: str) -> str:
    return _ID_UNSAFE.sub("_", text).strip("_") or "unknown"


def _kernel_facts(label: str, fp: Mapping[str, Any]) -> dict[str, str]:
    k = fp.get("kernel") if isinstance(fp.get("kernel"), Mapping) else {}
    m = fp.get("machine") if isinstance(fp.get("machine"), Mapping) else {}
    assert isinstance(k, Mapping) and isinstance(m, Mapping)
    return {
        key: str(value)
        for key, value in (
            ("release", k.get("release", "")),
            ("version", k.get("version", "")),
            ("origin", k.get("origin", "")),
            ("spec", k.get("spec", label)),
            ("accel", m.get("accel", "")),
            ("qemu", m.get("qemu", "")),
        )
        if value
    }


def _checkout_id(label: str, facts: Mapping[str, str]) -> str:
    return f"{ORIGIN}:{_slug(facts.get('origin') or facts.get('release') or label)}"


def _test(c: CaseSummary, build_id: str, run_id: str, facts: Mapping[str, str]) -> dict[str, Any]:
    test: dict[str, Any] = {
        "id": f"{ORIGIN}:{_slug(run_id)}:{_slug(c.kernel)}:{c.id}",
        "build_id": build_id,
        "origin": ORIGIN,
        "path": _PATH_UNSAFE.sub("_", c.id),
        "status": _STATUS[c.verdict],
        "duration": float(c.duration_s),
        "environment": {
            "comment": f"QEMU x86-64 guest ({facts.get('accel', '?').upper()})",
            "misc": {k: v for k, v in facts.items() if k in ("accel", "qemu")},
        },
        "misc": {
            "verdict": c.verdict.value,
            "runs": c.runs,
            "pass_rate": round(c.pass_rate, 4),
            "verdicts": [v.value for v in c.verdicts],
            "program": c.program,
            "expect": c.expect,
            "expect_reason": c.expect_reason,
            "kernel_events": list(c.kernel_events),
        },
    }
    if c.verdict is Verdict.XFAIL:
        test["waived"] = True
    if c.reason:
        test["comment"] = c.reason[:1000]
    excerpt = "\n".join([*c.kernel_events, c.output]).strip()
    if excerpt and c.verdict is not Verdict.PASS:
        test["log_excerpt"] = excerpt[-LOG_EXCERPT_CHARS:]
    return test


def document(rs: ResultSet, run_id: str, start_time: str | None = None) -> dict[str, Any]:
    """The KCIDB v4 document for a run or a matrix run. `start_time`: RFC 3339, or None."""
    checkouts: dict[str, dict[str, Any]] = {}
    builds: list[dict[str, Any]] = []
    tests: list[dict[str, Any]] = []
    for label in rs.kernels:
        facts = _kernel_facts(label, rs.fingerprints.get(label, {}))
        checkout_id = _checkout_id(label, facts)
        if checkout_id not in checkouts:
            checkout: dict[str, Any] = {
                "id": checkout_id,
                "origin": ORIGIN,
                "valid": True,
                "tree_name": "debian" if facts.get("origin", "").startswith("debian:") else "local",
                "comment": facts.get("origin") or label or "unknown kernel",
                "misc": {"spec": facts.get("spec", label), "upstream_version": facts.get("version", "")},
            }
            if facts.get("release"):
                checkout["git_commit_name"] = facts["release"]
            checkouts[checkout_id] = checkout
        build_id = f"{checkout_id}:x86_64"
        build: dict[str, Any] = {
            "id": build_id,
            "checkout_id": checkout_id,
            "origin": ORIGIN,
            "valid": True,
            "architecture": "x86_64",
            "comment": facts.get("release") or label or "unknown kernel",
            "config_name": "debian-amd64" if checkouts[checkout_id]["tree_name"] == "debian" else "local",
        }
        if start_time:
            build["start_time"] = start_time
        if all(b["id"] != build_id for b in builds):
            builds.append(build)
        for c in rs.of_kernel(label):
            t = _test(c, build_id, run_id, facts)
            if start_time:
                t["start_time"] = start_time
            tests.append(t)
    return {
        "version": dict(SCHEMA_VERSION),
        "checkouts": list(checkouts.values()),
        "builds": builds,
        "tests": tests,
    }
