"""The run's recovery paths without QEMU: a program that times out, a guest that stops answering
or dies, and the reboot budget, driven through runner.execute with a fake guest in the
GuestSession (the stages that resolve the kernel and build the initramfs are stubbed)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from harness.errors import CommandTimeout, GuestUnresponsive, MachineError, TransportError
from harness.model import Verdict
from harness.run import runner
from harness.run.guestfacts import GUEST_FACTS
from harness.run.session import Guest, GuestSession
from harness.vm.transport import CommandResult, Transport
from tests.unit.test_runner_mapping import IDS, K612, SEL

Reply = Callable[[list[str]], CommandResult]  # the program's ids -> what it printed


def ktap(*lines: str) -> CommandResult:
    return CommandResult(0, ("TAP version 13\n" + "".join(f"{x}\n" for x in lines)).encode(), b"")


def ids_of(argv: Sequence[str]) -> list[str]:
    asked = [a for a in argv if a.startswith("cow.")]
    return asked or list(IDS)  # no ids: every case


class FakeTransport:
    name = "fake"

    def __init__(self, guest: FakeGuest) -> None:
        self.guest = guest

    def run(self, command: str | Sequence[str], timeout_s: float = 60.0) -> CommandResult:
        if command == GUEST_FACTS:
            return CommandResult(0, b"kernel=6.12.117\npinner=module\n", b"")
        if isinstance(command, str):  # dmesg | gzip
            return CommandResult(0, b"", b"")
        self.guest.calls.append(ids_of(command))
        return self.guest.script.pop(0)(ids_of(command))

    def put(self, data: bytes, remote: str, mode: int = 0o644) -> None:
        raise AssertionError("not used by a run")

    def close(self) -> None:
        pass


class FakeGuest:
    """One fake guest; `script` (shared by every guest of the run) answers program runs in order."""

    def __init__(self, script: list[Reply], calls: list[list[str]], console: str = "") -> None:
        self.script, self.calls, self.log = script, calls, console
        self.console: Transport = FakeTransport(self)
        self.accel, self.accel_note, self.boot_s, self.restored = "tcg", "", 0.1, False
        self.qemu_version = "QEMU 9.9"
        self.killed = self.backtraces = False

    def alive(self) -> bool:
        return not self.killed

    def log_offset(self) -> int:
        return len(self.log)

    def log_since(self, offset: int) -> str:
        return self.log[offset:]

    def log_has(self, offset: int, needle: bytes) -> bool:
        return needle.decode() in self.log[offset:]

    def drain(self, seconds: float) -> None:
        pass

    def drain_in_background(self) -> None:
        pass

    def dump_backtraces(self) -> None:
        self.backtraces = True
        self.log += "sysrq: Show Blocked State\n"

    def kill(self) -> None:
        self.killed = True

    def shutdown(self) -> None:
        self.killed = True


def run_with(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, script: list[Reply], max_reboots: int = 3
) -> tuple[runner.RunOutcome, list[FakeGuest], list[list[str]]]:
    guests: list[FakeGuest] = []
    calls: list[list[str]] = []

    def fresh(replacing: bool) -> Guest:
        assert replacing == bool(guests)  # a guest after the first replaces a lost one
        guests.append(FakeGuest(script, calls))
        return guests[-1]

    def prepare(self: runner._Run) -> None:
        self.selected, self.kernel = [SEL], K612
        self.all_ids = {SEL.program.name: list(IDS)}

    def build_guest(self: runner._Run) -> None:
        self.session = GuestSession(fresh, self.say, self.req.max_reboots, section_wait_s=0.0)

    monkeypatch.setattr(runner._Run, "prepare", prepare)
    monkeypatch.setattr(runner._Run, "build_guest", build_guest)
    out = runner.execute(runner.RunRequest(out=tmp_path / "run", max_reboots=max_reboots))
    return out, guests, calls


def verdicts(out: runner.RunOutcome) -> dict[str, tuple[Verdict, str]]:
    return {r.id: (r.verdict, r.reason) for r in out.results}


def test_a_clean_run_powers_the_guest_off_and_records_the_first_boot(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out, guests, calls = run_with(
        monkeypatch, tmp_path, [lambda ids: ktap("1..3", *(f"ok {i} x" for i in (1, 2, 3)))]
    )
    assert out.exit_code == 0 and out.stage is runner.Stage.DONE
    assert calls == [list(IDS)] and len(guests) == 1 and guests[0].killed
    fp = json.loads((tmp_path / "run" / "fingerprint.json").read_text())
    assert fp["machine"]["accel"] == "tcg" and fp["machine"]["qemu"] == "QEMU 9.9"
    assert fp["guest"]["pinner"] == "module" and fp["reboots"] == []


def test_a_timeout_blames_the_first_unreported_case_and_reruns_the_rest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def hangs_in_b(ids: list[str]) -> CommandResult:
        raise CommandTimeout("killed at its limit", partial=ktap("1..3", "ok 1 cow.a"))

    out, guests, calls = run_with(monkeypatch, tmp_path, [hangs_in_b, lambda ids: ktap("1..1", "ok 1 cow.c")])
    assert calls == [list(IDS), ["cow.c"]]  # the same guest: a timeout is the program's, not the guest's
    assert len(guests) == 1
    v = verdicts(out)
    assert v["cow.a"][0] is Verdict.PASS and v["cow.c"][0] is Verdict.PASS
    assert v["cow.b"][0] is Verdict.ERROR and "timed out" in v["cow.b"][1]
    assert out.exit_code == 1


def test_a_guest_that_stops_answering_is_asked_for_backtraces_replaced_and_the_rest_rerun(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def lost(ids: list[str]) -> CommandResult:
        raise GuestUnresponsive("no reply in 900s")

    out, guests, calls = run_with(
        monkeypatch, tmp_path, [lost, lambda ids: ktap("1..2", "ok 1 cow.b", "ok 2 cow.c")]
    )
    assert len(guests) == 2 and guests[0].backtraces and guests[0].killed
    assert calls == [list(IDS), ["cow.b", "cow.c"]]
    v = verdicts(out)
    assert v["cow.a"][0] is Verdict.ERROR and "stopped responding" in v["cow.a"][1]
    assert v["cow.b"][0] is Verdict.PASS and v["cow.c"][0] is Verdict.PASS
    fp = json.loads((tmp_path / "run" / "fingerprint.json").read_text())
    assert [r["why"] for r in fp["reboots"]] == ["the guest stopped responding"]
    assert (tmp_path / "run" / "output" / f"{SEL.program.name}.lost-guest.console").is_file()


def test_past_the_reboot_budget_the_run_stops_and_reports_the_rest_not_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def dies(ids: list[str]) -> CommandResult:
        raise TransportError("QEMU exited")

    out, guests, calls = run_with(monkeypatch, tmp_path, [dies, dies, dies], max_reboots=1)
    assert len(guests) == 2  # the first and one reboot, then the budget is spent
    assert out.exit_code == 2 and "guest lost 2 times" in out.error
    v = verdicts(out)
    assert v["cow.a"][0] is Verdict.ERROR and "died" in v["cow.a"][1]
    assert v["cow.b"][0] is Verdict.ERROR and "died" in v["cow.b"][1]
    (c,) = [r for r in out.results if r.id == "cow.c"]
    assert c.not_run and c.reason.startswith("not run: guest lost 2 times")
    assert out.stage is runner.Stage.RUN and runner.guest_results(out) is not None


def test_a_session_without_a_guest_says_so() -> None:
    s = GuestSession(lambda replacing: pytest.fail("not booted"), lambda m: None, 3)
    with pytest.raises(MachineError, match="no guest"):
        s.transport.run("true")
    s.close(clean=True)  # nothing to stop
