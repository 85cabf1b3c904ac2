"""harness.kcidb: the KCIDB v4 document of recorded results, validated with KernelCI's own
kcidb-io package (its JSON schema), plus a golden file."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from harness.model import Verdict
from harness.report import kcidb, resultset
from tests.helpers.paths import DATA
from tests.helpers.results_data import MATRIX, RUN_612

GOLDEN = DATA / "golden" / "kcidb_matrix.json"
REGEN = os.environ.get("HARNESS_REGEN_GOLDEN") == "1"
START = "2026-11-21T23:52:00+00:00"


def schema() -> Any:
    kcidb_io = pytest.importorskip("kcidb_io", reason="kcidb-io not installed (pip install -e '.[test]')")
    return kcidb_io.schema


def test_the_matrix_document_is_valid_kcidb_v4() -> None:
    s = schema()
    doc = kcidb.document(resultset.load(MATRIX), "m1", START)
    s.V4_0.validate_exactly(doc)  # exactly v4.0, the version it declares
    s.LATEST.validate(doc)  # and readable by the newest schema (via its upgrade path)
    assert s.LATEST.upgrade(doc)["tests"]


def test_invalid_documents_are_rejected_by_the_same_check() -> None:
    """The validation above can fail: a document with a bad status does not pass it."""
    s = schema()
    import jsonschema

    doc = kcidb.document(resultset.load(RUN_612), "r", START)
    doc["tests"][0]["status"] = "XFAIL"
    with pytest.raises(jsonschema.ValidationError):
        s.V4_0.validate_exactly(doc)


def test_golden() -> None:
    doc = kcidb.document(resultset.load(MATRIX), "m1", START)
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    if REGEN:
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_shape_ids_and_status_mapping() -> None:
    rs = resultset.load(MATRIX)
    doc = kcidb.document(rs, "m1", START)
    assert len(doc["checkouts"]) == 2 and len(doc["builds"]) == 2 and len(doc["tests"]) == 56
    assert all(
        o["origin"] == "harness" and o["id"].startswith("harness:")
        for part in ("checkouts", "builds", "tests")
        for o in doc[part]
    )
    assert len({t["id"] for t in doc["tests"]}) == 56
    builds = {b["id"]: b for b in doc["builds"]}
    checkouts = {c["id"] for c in doc["checkouts"]}
    assert all(t["build_id"] in builds for t in doc["tests"])
    assert all(b["checkout_id"] in checkouts for b in builds.values())
    xfail = [t for t in doc["tests"] if t["misc"]["verdict"] == "XFAIL"]
    assert len(xfail) == 4 and all(t["status"] == "FAIL" and t["waived"] for t in xfail)
    assert all(t["status"] == "SKIP" for t in doc["tests"] if t["misc"]["verdict"] == "SKIP")


def test_every_verdict_maps_to_a_kcidb_status_and_long_output_is_cut() -> None:
    s = schema()
    base = resultset.load(RUN_612)
    cases = tuple(
        resultset.CaseSummary(
            "debian:6.12",
            f"x.{v.value.lower()}",
            "p",
            v,
            (v,),
            "why",
            "o" * 40000,
            ("WARNING: CPU: 0 PID: 1 at mm/gup.c:1 x",),
        )
        for v in Verdict
    )
    rs = resultset.ResultSet("t", cases, ("debian:6.12",), base.fingerprints)
    doc = kcidb.document(rs, "t", None)
    status = {t["path"]: t["status"] for t in doc["tests"]}
    assert status == {
        "x.pass": "PASS",
        "x.fail": "FAIL",
        "x.xfail": "FAIL",
        "x.xpass": "PASS",
        "x.skip": "SKIP",
        "x.error": "ERROR",
        "x.flaky": "FAIL",
    }
    assert all(len(t.get("log_excerpt", "")) <= kcidb.LOG_EXCERPT_CHARS for t in doc["tests"])
    s.V4_0.validate_exactly(doc)
