"""`harness lava submit`: a job to a LAVA server through its REST API (v0.2), waited for, and
its log fetched for `harness lava collect`.

    POST {url}/api/v0.2/jobs/            {"definition": job.yaml text} → {"job_ids": [N]}
    GET  {url}/api/v0.2/jobs/N/          {"state": ..., "health": ...}  until state is Finished
    GET  {url}/api/v0.2/jobs/N/logs/     the job log (YAML, one record a line) → LOGS/job.log

The token is sent as `Authorization: Token T`. The server's answers are bounded (a status
reply is small; a log at most lavacollect.MAX_LOG_BYTES) and an answer that is not what the
API gives is one error line, not a traceback.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, InputError

Progress = Callable[[str], None]
MAX_STATUS_BYTES = 1 << 20
MAX_LOG_BYTES = 512 << 20
HTTP_TIMEOUT_S = 60.0
FINISHED = "Finished"


class LavaServerError(HarnessError):
    """The LAVA server refused or did not answer as its API does."""


def _token(path: Path) -> str:
    try:
        tok = path.read_text().strip()
    except OSError as e:
        raise InputError(f"--token-file {path}: {e.strerror}") from None
    if not tok or any(c.isspace() for c in tok):
        raise InputError(f"--token-file {path}: expected one token on one line")
    return tok


def _request(url: str, token: str, data: bytes | None = None, limit: int = MAX_STATUS_BYTES) -> bytes:
    req = urllib.request.Request(
        url,
        data=data,
        method="POST" if data is not None else "GET",
        headers={
            "Authorization": f"Token {token}",
            "Accept": "application/json",
            **({"Content-Type": "application/json"} if data is not None else {}),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as r:
            body: bytes = r.read(limit + 1)
    except urllib.error.HTTPError as e:
        detail = e.read(300).decode("utf-8", "replace").strip().replace("\n", " ")
        raise LavaServerError(f"{url}: HTTP {e.code} {e.reason}: {detail}") from None
    except (urllib.error.URLError, OSError) as e:
        raise LavaServerError(f"{url}: cannot reach the LAVA server ({getattr(e, 'reason', e)})") from None
    if len(body) > limit:
        raise LavaServerError(f"{url}: the answer is over {limit} bytes")
    return body


def _json(body: bytes, url: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise LavaServerError(f"{url}: the answer is not JSON") from None
    if not isinstance(doc, dict):
        raise LavaServerError(f"{url}: the answer is not a JSON object")
    return doc


def submit(api: str, token: str, definition: str) -> int:
    url = f"{api}/jobs/"
    doc = _json(_request(url, token, json.dumps({"definition": definition}).encode()), url)
    ids = doc.get("job_ids")
    if not isinstance(ids, list) or not ids or not isinstance(ids[0], int):
        raise LavaServerError(f"{url}: no job id in the answer ({str(doc)[:200]})")
    return int(ids[0])


def status(api: str, token: str, job_id: int) -> tuple[str, str]:
    url = f"{api}/jobs/{job_id}/"
    doc = _json(_request(url, token), url)
    return str(doc.get("state", "?"))[:40], str(doc.get("health", "?"))[:40]


def submit_and_wait(
    job_yaml: Path,
    server: str,
    token_file: Path,
    logs: Path,
    poll_s: float = 30.0,
    timeout_s: float = 6 * 3600.0,
    progress: Progress = lambda s: None,
) -> Path:
    """Submit, wait with progress until the job is Finished, fetch its log into logs/job.log."""
    if not server.startswith(("http://", "https://")):
        raise InputError(f"--url {server}: expected http:// or https://")
    token = _token(token_file)
    definition = job_yaml.read_text()
    if "file://" in definition:
        progress(
            "warning: the job's artefacts are file:// URLs; a lab's worker cannot fetch them "
            "unless it shares this filesystem (write the job with --url-base)"
        )
    api = server.rstrip("/") + "/api/v0.2"
    job_id = submit(api, token, definition)
    (logs / "job-id").write_text(f"{job_id}\n")
    progress(f"submitted as job {job_id}: {server.rstrip('/')}/scheduler/job/{job_id}")
    t0, last = time.monotonic(), ("", "")
    while True:
        now = status(api, token, job_id)
        if now != last:
            progress(f"[{time.monotonic() - t0:7.0f}s] job {job_id}: {now[0]} ({now[1]})")
            last = now
        if now[0] == FINISHED:
            break
        if time.monotonic() - t0 > timeout_s:
            raise LavaServerError(f"job {job_id} not finished after {timeout_s:.0f}s (state {now[0]})")
        time.sleep(poll_s)
    log = logs / "job.log"
    log.write_bytes(_request(f"{api}/jobs/{job_id}/logs/", token, limit=MAX_LOG_BYTES))
    progress(f"job {job_id} finished ({last[1]}); log: {log}")
    return log
