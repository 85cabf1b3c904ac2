"""Reading a LAVA job's log (pure): the console lines, LAVA's own results, and the harness's
frames in the console (harness/report/lava.py, FRAME).

Two forms of the same records are read: lava-run's stdout (one JSON object per line, among a
few lines of other text) and a LAVA server's job log (`lavacli jobs logs --raw ID`, or the REST
API's /api/v0.2/jobs/ID/logs/: a YAML list, one `- {"dt": ..., "lvl": ..., "msg": ...}` per
line). Records of level `target` are the DUT's console, one line each.

The console is the guest's, so untrusted: frame names, sizes and counts are bounded, a frame
whose md5 does not match its text is reported as damaged, and its gzip is decompressed with
limits.gunzip's bounds.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from harness import limits
from harness.report.lava import FRAME, PROGRAM, RC

MAX_LINE_CHARS = 1 << 20  # a log record longer than this is not read
MAX_FRAMES = 1000
MAX_FRAME_CHARS = 64 * limits.MIB  # of base64 text in one frame
_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,100}")
_STAMP = re.compile(r"^\s*(?:<\d{1,3}>)?\[\s*\d+\.\d{6}\]")


@dataclass(frozen=True)
class ConsoleLine:
    dt: str  # the record's time as LAVA wrote it ("" when absent)
    text: str


@dataclass
class JobLog:
    console: list[ConsoleLine] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)  # LAVA's own (lvl: results)
    errors: list[str] = field(default_factory=list)  # LAVA's error lines (the first few)
    records: int = 0

    @property
    def job_result(self) -> str:
        """LAVA's verdict on the job itself (pass | fail | incomplete), "" when not in the log."""
        for r in self.results:
            if r.get("definition") == "lava" and r.get("case") == "job":
                return str(r.get("result", ""))
        return ""

    def console_text(self, start: int = 0, end: int | None = None) -> str:
        return "\n".join(c.text for c in self.console[start:end])


def _record(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if line.startswith("- "):
        line = line[2:].lstrip()
    if not line.startswith("{") or len(line) > MAX_LINE_CHARS:
        return None
    try:
        rec = json.loads(line)
    except ValueError:
        try:
            rec = yaml.safe_load(line)
        except yaml.YAMLError:
            return None
    return rec if isinstance(rec, dict) and "lvl" in rec else None


def parse_job_log(text: str) -> JobLog:
    log = JobLog()
    for line in text.splitlines():
        rec = _record(line)
        if rec is None:
            continue
        log.records += 1
        lvl, msg = rec.get("lvl"), rec.get("msg")
        if lvl == "target" and isinstance(msg, str):
            for part in msg.replace("\r", "").split("\n"):
                log.console.append(ConsoleLine(str(rec.get("dt", "")), part))
        elif lvl == "results" and isinstance(msg, dict):
            log.results.append(msg)
        elif lvl == "error" and len(log.errors) < 20:
            log.errors.append(str(msg)[: limits.MAX_REASON_CHARS])
    return log


@dataclass(frozen=True)
class Frame:
    name: str
    data: bytes | None  # None: damaged or cut off (problem says how)
    problem: str = ""
    note: str = ""  # what limits.gunzip cut, if anything


def frames(lines: list[ConsoleLine]) -> dict[str, Frame]:
    """Every frame in the console, by name (the first of a name wins)."""
    open_: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    out: dict[str, Frame] = {}
    for c in lines:
        i = c.text.find(FRAME)
        if i < 0:
            continue
        name, sep, payload = c.text[i + len(FRAME) :].partition(":")
        if not sep or not _NAME.fullmatch(name) or name in out:
            continue
        payload = payload.strip()
        if payload.startswith("end:"):
            out[name] = _close(name, open_.pop(name, []), payload[4:])
            if len(out) >= MAX_FRAMES:
                break
            continue
        if name not in open_ and len(open_) >= MAX_FRAMES:
            continue
        sizes[name] = sizes.get(name, 0) + len(payload)
        if sizes[name] <= MAX_FRAME_CHARS:
            open_.setdefault(name, []).append(payload)
    for name in open_:
        if name not in out:
            out[name] = Frame(name, None, "the console ends inside it")
    return out


def _close(name: str, b64_lines: list[str], md5: str) -> Frame:
    text = "".join(f"{b}\n" for b in b64_lines)
    if hashlib.md5(text.encode()).hexdigest() != md5.strip():
        return Frame(name, None, "damaged on the console (md5 mismatch: a kernel message inside it?)")
    if not b64_lines:
        return Frame(name, b"")
    try:
        raw = base64.b64decode("".join(b64_lines), validate=True)
        data, note = limits.gunzip(raw)
    except (binascii.Error, ValueError, limits.DecompressError) as e:
        return Frame(name, None, f"not base64 gzip: {e}")
    return Frame(name, data, "", note)


@dataclass(frozen=True)
class Section:
    """One program's part of the console: from its start line to its rc line (or where the
    console or the next program starts)."""

    start: int
    end: int  # exclusive
    rc: int | None  # None: no rc line (the guest was lost in this program)
    seconds: float | None  # from the start line to the rc line, from LAVA's timestamps


def sections(lines: list[ConsoleLine]) -> dict[str, Section]:
    starts: list[tuple[int, str]] = []
    rcs: dict[str, tuple[int, int]] = {}
    for n, c in enumerate(lines):
        t = c.text.strip()
        if t.startswith(PROGRAM):
            name = t[len(PROGRAM) :].strip()
            if _NAME.fullmatch(name):
                starts.append((n, name))
        elif t.startswith(RC):
            name, _, rc = t[len(RC) :].partition(" ")
            if rc.strip().isdigit() and name not in rcs:
                rcs[name] = (n, int(rc.strip()))
    out: dict[str, Section] = {}
    for k, (n, name) in enumerate(starts):
        if name in out:
            continue
        nxt = starts[k + 1][0] if k + 1 < len(starts) else len(lines)
        rc_at = rcs.get(name)
        if rc_at is not None and n < rc_at[0] <= nxt:
            out[name] = Section(n, rc_at[0] + 1, rc_at[1], _seconds(lines[n].dt, lines[rc_at[0]].dt))
        else:
            out[name] = Section(n, nxt, None, None)
    return out


def _seconds(a: str, b: str) -> float | None:
    try:
        return max(
            0.0, (datetime.datetime.fromisoformat(b) - datetime.datetime.fromisoformat(a)).total_seconds()
        )
    except ValueError:
        return None


def plain_ktap(lines: list[ConsoleLine]) -> str:
    """A program's KTAP as it came on the console (when its frame is damaged): the lines that
    are neither kernel messages nor frames."""
    return "\n".join(c.text for c in lines if FRAME not in c.text and not _STAMP.match(c.text))


def lava_verdicts(results: list[dict[str, Any]], definition: str) -> dict[str, str]:
    """LAVA's own result per case id, from its monitor `definition` (pass | fail | skip)."""
    out: dict[str, str] = {}
    for r in results:
        extra = r.get("extra")
        case = extra.get("test_case_id") if isinstance(extra, dict) else None
        case = case if isinstance(case, str) else r.get("case")
        if r.get("definition") == definition and isinstance(case, str):
            out[case] = str(r.get("result", ""))
    return out
