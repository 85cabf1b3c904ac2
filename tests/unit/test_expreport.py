"""`harness expectations`: the pure report on synthetic data and on the recorded results, and
the real CLI on a small run dir (exit 0 / 1 / 2). Nothing boots."""

from __future__ import annotations

import json
from pathlib import Path

from harness.judge import expect, expreport
from harness.judge.expreport import ObservedCase, ObservedKernel
from harness.judge.expreport_cmd import observed
from harness.model import KernelVersion, Outcome, Verdict
from harness.report import resultset
from tests.contract.test_cli_errors import assert_one_error, cli
from tests.helpers import paths

DATA = paths.DATA / "results"

RULES = """\
version: 1
rules:
  # old kernels leak
  # UNVERIFIED: not run on a <5.8 kernel.
  - match: "cow.a.*"
    expect: fail
    kernel: "<5.8"
    reason: old

  - match: "cow.b.*"
    expect: pass

  - match: "cow.b.base"
    expect: fail
    reason: never fixed

  - match: "cow.gup-*"
    expect: skip
    config: {CONFIG_GUP_TEST: n}
    reason: no gup_test
    commit: CONFIG_GUP_TEST

  - match: ["cow.c.*", "cow.gone.*"]
    expect: skip
    kernel: ">=7.0"
    reason: feature went
    commit: "7.0"
"""
KNOWN = ["cow.a.base", "cow.b.base", "cow.b.thp", "cow.c.base", "cow.gup-x.base"]


def _report(kernels: list[ObservedKernel], known: list[str] | None = KNOWN) -> expreport.Report:
    rules = expect.parse(RULES, "exp.yaml")
    return expreport.build(rules, expreport.comment_blocks(RULES), kernels, known, runs=["r"])


def _k(
    version: str, cases: dict[str, tuple[Outcome, ...]], config: dict[str, str] | None = None
) -> ObservedKernel:
    v = KernelVersion(*map(int, version.split(".")))
    return ObservedKernel(
        f"debian:{version}",
        v,
        config if config is not None else {},
        tuple(ObservedCase(i, o) for i, o in cases.items()),
    )


def by_line(rep: expreport.Report) -> dict[int, expreport.RuleReport]:
    return {int(r.source.rpartition(":")[2]): r for r in rep.rules}


def test_static_without_runs() -> None:
    rep = _report([])
    r = by_line(rep)
    assert r[5].known_ids == 1 and r[5].unverified.startswith("UNVERIFIED: not run on a <5.8")
    assert r[23].dead_globs == ("cow.gone.*",) and r[23].stale and r[23].known_ids == 1
    assert [x.source for x in rep.stale] == ["exp.yaml:23"] and rep.exit_code == 1
    assert r[10].known_ids == 2 and not r[13].unverified
    out = expreport.text(rep)
    assert "no runs given" in out and "matches 2 known case ids" in out
    assert "exp.yaml:23  cow.gone.*" in out


def test_decided_never_applied_and_disagreed() -> None:
    ok, bad, skip = (Outcome.OK,), (Outcome.NOT_OK,), (Outcome.SKIP,)
    k61 = _k(
        "6.1.192",
        {"cow.a.base": ok, "cow.b.base": bad, "cow.b.thp": ok, "cow.c.base": ok, "cow.gup-x.base": skip},
    )
    k73 = _k("7.3.4", {"cow.a.base": ok, "cow.b.base": ok, "cow.c.base": ok, "cow.gup-x.base": ok})
    rep = _report([k73, k61])
    r = by_line(rep)
    assert rep.kernels == ("6.1.192", "7.3.4")
    assert r[5].never_applied == "needs kernel <5.8; these runs had 6.1.192..7.3.4" and not r[5].stale
    assert r[13].decided_on == ("6.1.192", "7.3.4") and dict(r[13].verdicts) == {"XFAIL": 1, "XPASS": 1}
    assert r[13].disagreed == ("XPASS on 7.3.4: cow.b.base",)
    assert r[17].disagreed == ("ran (PASS) on 7.3.4: cow.gup-x.base",)
    assert dict(r[17].verdicts) == {"PASS": 1, "SKIP": 1}
    assert r[23].disagreed == ("ran (PASS) on 7.3.4: cow.c.base",)
    assert r[10].decided_cases == 1 and r[10].decided_on == ("6.1.192",)  # b.thp; b.base: rule 13 wins
    assert rep.exit_code == 1
    out = expreport.text(rep)
    assert "decided 1 case on 6.1.192, 7.3.4: PASS 1 SKIP 1" in out
    assert "Disagreed with the runs (3):" in out
    js = expreport.as_json(rep)
    json.dumps(js)
    assert js["disagreed"] == ["exp.yaml:13", "exp.yaml:17", "exp.yaml:23"] and js["exit_code"] == 1


def test_config_unknown_and_overridden() -> None:
    k = ObservedKernel("x", KernelVersion(6, 12, 1), None, (ObservedCase("cow.gup-x.base", (Outcome.SKIP,)),))
    rep = _report([k])
    assert "is not in the runs" in by_line(rep)[17].never_applied and rep.no_config == ("6.12.1",)
    only_b = _k("6.12.1", {"cow.b.base": (Outcome.NOT_OK,)})
    r = by_line(_report([only_b]))
    assert r[10].never_applied == "every case it matches is decided by a later rule: exp.yaml:13"
    assert r[13].decided_cases == 1


def test_outcome_read_back() -> None:
    assert expreport.outcome_of(Verdict.XPASS, "fail") is Outcome.OK
    assert expreport.outcome_of(Verdict.XFAIL, "fail") is Outcome.NOT_OK
    assert expreport.outcome_of(Verdict.XFAIL, "pass") is Outcome.XFAIL
    assert expreport.outcome_of(Verdict.ERROR, "pass", f"{expect.UNEXPECTED_SKIP}: no swap") is Outcome.SKIP
    assert expreport.outcome_of(Verdict.ERROR, "pass", "hung") is Outcome.ERROR


def test_recorded_matrix() -> None:
    rs = resultset.load(DATA / "matrix")
    kernels = observed(rs, {})
    rules = expect.parse(
        'version: 1\nrules:\n  - match: "cow.vmsplice*.hugetlb-*"\n    expect: fail\n'
        '    reason: never fixed\n  - match: "cow.unshare.*"\n    expect: fail\n'
        '    kernel: "<5.0"\n    reason: old\n',
        "e.yaml",
    )
    rep = expreport.build(rules, {}, kernels, None)
    hug, old = rep.rules
    assert set(hug.decided_on) == set(rep.kernels) and len(rep.kernels) == 2
    # the hugetlb-1g cases: no 1 GiB pages in that guest, an unexpected skip (ERROR) then
    assert {v for v, _ in hug.verdicts} == {"XFAIL", "ERROR"} and not hug.disagreed
    assert old.never_applied.startswith("needs kernel <5.0; these runs had 6.1.192..")
    assert rep.exit_code == 0


def _run_dir(tmp_path: Path, verdict: str) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    (d / "fingerprint.json").write_text(json.dumps({"kernel": {"spec": "debian:6.1", "version": "6.1.192"}}))
    recs = [
        {
            "id": "cow.vmsplice.unmap-in-child.base",
            "verdict": verdict,
            "expectation": {"expect": "fail", "source": "x:1"},
        }
    ]
    (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return d


def _yaml(tmp_path: Path, kernel: str) -> Path:
    f = tmp_path / "e.yaml"
    f.write_text(
        f'version: 1\nrules:\n  - match: "cow.vmsplice.unmap-in-child.base"\n    expect: fail\n'
        f'    kernel: "{kernel}"\n    reason: leaks\n'
    )
    return f


def test_cli(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, "XPASS")
    p = cli(
        tmp_path, "expectations", str(run), "--expectations", str(_yaml(tmp_path, "<6.2")), own_cache=False
    )
    assert p.returncode == 1, p.stderr
    assert "XPASS on 6.1.192: cow.vmsplice.unmap-in-child.base" in p.stdout
    p = cli(
        tmp_path,
        "expectations",
        str(run),
        "--expectations",
        str(_yaml(tmp_path, "<5.8")),
        "--json",
        own_cache=False,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["rules"][0]["never_applied"].startswith("needs kernel <5.8")
    assert_one_error(cli(tmp_path, "expectations", str(tmp_path / "nope"), own_cache=False), "nope")
    (tmp_path / "bad.yaml").write_text("version: 1\nrules: [\n")
    assert_one_error(
        cli(tmp_path, "expectations", "--expectations", str(tmp_path / "bad.yaml"), own_cache=False),
        "bad.yaml:",
    )
