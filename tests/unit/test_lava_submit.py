"""harness.lavasubmit against a fake LAVA REST API (tests/fake_lava.py): the job is posted with
the token, waited for through its states, and its log fetched; a refused token or an answer the
API never gives is one clear error. (The vm test in test_lava.py also submits a real lava-run
log through the fake server and collects it.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InputError
from harness.report import lavalog, lavasubmit
from tests.helpers.fake_lava import TOKEN, FakeLava, server_log

LOG = (
    '{"dt": "2026-12-05T03:00:00", "lvl": "target", "msg": "harness-lava: begin"}\nnoise\n'
    '{"dt": "2026-12-05T03:00:01", "lvl": "results", "msg": {"definition": "lava", "case": "job", "result": "pass"}}\n'
)


def files(tmp_path: Path, token: str = TOKEN) -> tuple[Path, Path, Path]:
    job = tmp_path / "job.yaml"
    job.write_text("device_type: qemu\njob_name: x\n")
    tok = tmp_path / "token"
    tok.write_text(token + "\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    return job, tok, logs


def test_submit_waits_for_the_job_and_fetches_its_log(tmp_path: Path) -> None:
    job, tok, logs = files(tmp_path)
    said: list[str] = []
    with FakeLava(server_log(LOG)) as lava:
        log = lavasubmit.submit_and_wait(job, lava.url + "/", tok, logs, poll_s=0.01, progress=said.append)
    assert lava.posted == [{"definition": job.read_text()}]
    assert set(lava.auth) == {f"Token {TOKEN}"}
    assert (logs / "job-id").read_text() == "4242\n"
    parsed = lavalog.parse_job_log(log.read_text())
    assert parsed.job_result == "pass" and [c.text for c in parsed.console] == ["harness-lava: begin"]
    states = [s for s in said if "] job 4242:" in s]
    assert [s.split(": ", 1)[1] for s in states] == [
        "Submitted (Unknown)",
        "Running (Unknown)",
        "Finished (Complete)",
    ]


def test_a_refused_token_is_one_clear_error(tmp_path: Path) -> None:
    job, tok, logs = files(tmp_path, token="wrong")
    with FakeLava(LOG) as lava, pytest.raises(lavasubmit.LavaServerError, match="HTTP 401"):
        lavasubmit.submit_and_wait(job, lava.url, tok, logs, poll_s=0.01)


def test_bad_input_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    job, tok, logs = files(tmp_path)
    with pytest.raises(InputError, match="http"):
        lavasubmit.submit_and_wait(job, "lava.example.org", tok, logs)
    (tmp_path / "two").write_text("a b\n")
    with pytest.raises(InputError, match="one token"):
        lavasubmit.submit_and_wait(job, "https://lava.example.org", tmp_path / "two", logs)


def test_an_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    job, tok, logs = files(tmp_path)
    with FakeLava(LOG) as lava:
        url = lava.url
    with pytest.raises(lavasubmit.LavaServerError, match="cannot reach"):
        lavasubmit.submit_and_wait(job, url, tok, logs)


def test_server_log_is_the_yaml_form_of_lava_run_lines() -> None:
    text = server_log(LOG)
    assert text.splitlines()[0].startswith("- {") and "noise" not in text
    assert lavalog.parse_job_log(text).records == lavalog.parse_job_log(LOG).records == 2


def test_a_fan_out_puts_each_kernel_s_job_in_a_dir_of_its_own() -> None:
    from harness.report import lava_cmd

    assert lava_cmd.bundle_label("debian:6.12.118+deb12") == "debian-6.12.118+deb12"
    assert lava_cmd.bundle_label("/boot/my/bzImage") == "_boot_my_bzImage"
    assert lava_cmd.bundle_label(None) == "default"
