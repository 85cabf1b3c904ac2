"""The nightly pipeline files: they parse, run ci/nightly.sh with the kernel cache under
XDG_CACHE_HOME cached, restore the previous night as the baseline and publish what it made."""

from __future__ import annotations

import subprocess

import yaml

from tests.helpers.paths import REPO


def test_nightly_script_is_valid_bash_and_runs_the_matrix() -> None:
    script = REPO / "ci" / "nightly.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "run --kernel debian:lines" in text and "--baseline" in text  # the whole kernel line
    assert "--kernel debian:6.19 --kernel debian:7.0 --kernel debian:7.1" in text  # no modules: apart
    assert text.rstrip().endswith('exit "$failed"')


def test_github_workflow() -> None:
    wf = yaml.safe_load((REPO / ".github" / "workflows" / "nightly.yml").read_text())
    job = wf["jobs"]["matrix"]
    steps = job["steps"]
    runs = " ".join(s.get("run", "") for s in steps)
    uses = [s.get("uses", "") for s in steps]
    assert "bash ci/nightly.sh" in runs and "bash ci/setup.sh" in runs
    assert job["env"]["XDG_CACHE_HOME"].endswith("/.cache")
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache"))
    assert cache["with"]["path"] == ".cache/harness"
    download = next(s for s in steps if s.get("uses", "").startswith("actions/download-artifact"))
    upload = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
    assert download["with"]["name"] in {u["with"]["name"] for u in upload}  # tonight's is tomorrow's baseline
    # upload-artifact@v4 roots the artifact at the least common ancestor of the included paths
    # (exclusions do not count): one included directory → its contents at the artifact's top.
    matrix_upload = next(u for u in upload if u["with"]["name"] == download["with"]["name"])
    included = [ln for ln in matrix_upload["with"]["path"].split() if not ln.startswith("!")]
    assert included == ["nightly-out/matrix"]
    assert job["env"]["HARNESS_BASELINE"] == download["with"]["path"]
    assert any("junit" in u for u in uses)
    assert "schedule" in wf[True] if True in wf else "schedule" in wf["on"]  # YAML 1.1 reads `on` as True


def test_gitlab_pipeline() -> None:
    ci = yaml.safe_load((REPO / ".gitlab-ci.yml").read_text())
    job = ci["nightly"]
    assert job["script"] == ["bash ci/nightly.sh"]
    assert ci["variables"]["XDG_CACHE_HOME"] == "$CI_PROJECT_DIR/.cache" and ci["cache"]["paths"] == [
        ".cache/harness"
    ]
    assert job["artifacts"]["reports"]["junit"] == "nightly-out/junit.xml"
    assert job["variables"]["HARNESS_BASELINE"] == "previous/nightly-out/matrix"
    assert "nightly-out/" in job["artifacts"]["paths"]
    assert ci["test"]["script"] == ["bash .ci/run"]
