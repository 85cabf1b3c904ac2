"""A tiny stand-in for a LAVA server's REST API (v0.2), for `harness lava submit` tests: it takes
one job, reports it Submitted, Running, then Finished, and serves a job log given to it. No real
LAVA server is reachable from here; this checks the client's side of the API as LAVA documents it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "s3cret-token"


def server_log(lava_run_log: str) -> str:
    """lava-run's JSON lines as a LAVA server gives the job's log: a YAML list, one record a line."""
    out = []
    for line in lava_run_log.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                json.loads(line)
            except ValueError:
                continue
            out.append(f"- {line}")
    return "\n".join(out) + "\n"


class FakeLava:
    def __init__(self, log_text: str, states: tuple[str, ...] = ("Submitted", "Running", "Finished")) -> None:
        self.log_text = log_text
        self.states = list(states)
        self.posted: list[dict[str, Any]] = []
        self.auth: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authorized(self) -> bool:
                fake.auth.append(self.headers.get("Authorization", ""))
                if self.headers.get("Authorization") != f"Token {TOKEN}":
                    self._send(401, b'{"detail": "Invalid token."}')
                    return False
                return True

            def do_POST(self) -> None:  # noqa: N802
                if not self._authorized():
                    return
                n = int(self.headers.get("Content-Length", "0"))
                fake.posted.append(json.loads(self.rfile.read(n)))
                if self.path == "/api/v0.2/jobs/":
                    self._send(201, b'{"message": "job(s) successfully submitted", "job_ids": [4242]}')
                else:
                    self._send(404, b'{"detail": "Not found."}')

            def do_GET(self) -> None:  # noqa: N802
                if not self._authorized():
                    return
                if self.path == "/api/v0.2/jobs/4242/":
                    state = fake.states.pop(0) if len(fake.states) > 1 else fake.states[0]
                    health = "Complete" if state == "Finished" else "Unknown"
                    self._send(200, json.dumps({"id": 4242, "state": state, "health": health}).encode())
                elif self.path == "/api/v0.2/jobs/4242/logs/":
                    self._send(200, fake.log_text.encode(), "application/yaml")
                else:
                    self._send(404, b'{"detail": "Not found."}')

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeLava:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
