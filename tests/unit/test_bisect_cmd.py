"""The bisect command's own parts: what a run says (observe), --kernels ranges, and
`harness run --bisect-exit` exit codes for plain `git bisect run` (with execute faked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import cli
from harness.bisect import bisect_cmd
from harness.bisect.bisect_cmd import expand_kernels, observe, packages_between
from harness.errors import BuildError, HarnessError, InputError
from harness.kernels import aptstate, debian
from harness.model import CaseResult, Expect, Expectation, Outcome, Verdict
from harness.run.runner import RunOutcome, Stage
from tests.helpers.paths import DATA

TEST = "cow.unshare.odirect-write.base"
OTHER = "cow.fork.child-keeps-data.base"


def case(case_id: str, outcome: Outcome, verdict: Verdict, reason: str = "") -> CaseResult:
    return CaseResult(
        case_id,
        "cow_unshare",
        outcome,
        verdict,
        reason,
        "",
        Expectation(Expect.PASS),
        not_run=reason.startswith("not run"),
    )


def outcome(results: list[CaseResult], code: int = 0, stage: str = "done", error: str = "") -> RunOutcome:
    return RunOutcome(Path("/tmp/run"), results, code, error, stage=Stage(stage))


# ---- observe --------------------------------------------------------------------------------


def test_observe_keeps_only_the_named_tests() -> None:
    out = outcome([case(TEST, Outcome.NOT_OK, Verdict.XFAIL), case(OTHER, Outcome.ERROR, Verdict.ERROR)], 1)
    obs = observe(out, (TEST,))
    assert [(c.id, c.outcome, c.verdict) for c in obs.cases] == [(TEST, "not_ok", "XFAIL")]
    assert not obs.boot_failed


def test_observe_boot_failure_and_harness_failure() -> None:
    not_run = [case(TEST, Outcome.ERROR, Verdict.ERROR, "not run: guest never booted")]
    obs = observe(outcome(not_run, 2, "boot", "no sign of life in 300s"), (TEST,))
    assert obs.boot_failed and obs.detail == "no sign of life in 300s"
    # Lost before the first result (a panic right after init): the kernel's fault, like a boot.
    assert observe(outcome(not_run, 2, "run", "guest lost"), (TEST,)).boot_failed
    # Stopped before booting: the harness's problem, which stops the bisect.
    with pytest.raises(HarnessError, match="stopped before booting"):
        observe(outcome(not_run, 2, "build_guest", "cpio failed"), (TEST,))
    with pytest.raises(KeyboardInterrupt):
        observe(outcome(not_run, 130, "run", "interrupted"), (TEST,))


def test_observe_a_crash_in_the_named_test_is_an_observation() -> None:
    crashed = [case(TEST, Outcome.ERROR, Verdict.ERROR, "the guest died (QEMU exited): Kernel panic")]
    obs = observe(outcome(crashed, 2, "run", "guest lost 4 times"), (TEST,))
    assert not obs.boot_failed and obs.cases[0].outcome == "error"


# ---- --kernels --------------------------------------------------------------------------------

# The recorded `apt-cache madison` of the harness's apt state (every suite, 2026-12-04).
_DATA = DATA / "debian"
KERNELS = debian.available_from(
    aptstate.parse_madison((_DATA / "apt-cache-madison-linux-image.txt").read_text()),
    (_DATA / "apt-cache-pkgnames-linux-binary-modules.txt").read_text().split(),
)


def _k(spec: str) -> debian.AvailableKernel:
    return debian.select(spec, KERNELS)


def test_packages_between_orders_and_filters() -> None:
    got = packages_between(KERNELS, _k("6.1.0-47"), _k("6.1.0-56"))
    assert [k.spec for k in got] == [f"debian:6.1.0-{n}" for n in range(47, 57)]
    cloud = packages_between(KERNELS, _k("6.1.0-53-cloud"), _k("6.1.0-54-cloud"))
    assert [k.spec for k in cloud] == ["debian:6.1.0-53-cloud", "debian:6.1.0-54-cloud"]
    with pytest.raises(InputError, match="backwards"):
        packages_between(KERNELS, _k("6.1.0-56"), _k("6.1.0-47"))
    with pytest.raises(InputError, match="flavours"):
        packages_between(KERNELS, _k("6.1.0-47"), _k("6.1.0-56-cloud"))


def test_packages_between_across_suites() -> None:
    got = [k.spec for k in packages_between(KERNELS, _k("6.12.118"), _k("7.3.4+deb13"))]
    assert got[0] == "debian:6.12.118+deb12" and got[-1] == "debian:7.3.4+deb13"
    assert "debian:6.16.3+deb13" in got and "debian:7.2.12+deb13" in got
    # 6.19, 7.0 and 7.1 have no modules in the archive: left out.
    assert not any(s.startswith(("debian:6.19", "debian:7.0", "debian:7.1")) for s in got)
    ups = [_k(s.removeprefix("debian:")).upstream for s in got]
    assert ups == sorted(ups)
    # 6.12.118 was built for bookworm and trixie from one source: one step, the host's build.
    assert [s for s in got if s.startswith("debian:6.12.118")] == ["debian:6.12.118+deb12"]


def test_expand_kernels_ranges_and_lists() -> None:
    # 6.1.0-55, -56 and -57 are all 6.1.192 (Debian revisions -1, -2, -3): all three kept.
    got = expand_kernels("debian:6.1.0-55..debian:6.1.0-57", KERNELS)
    assert got == ["debian:6.1.0-55", "debian:6.1.0-56", "debian:6.1.0-57"]
    got = expand_kernels("debian:6.1.0-56, debian:6.12.100+deb12,debian:6.12.117+deb12-amd64", KERNELS)
    assert got == ["debian:6.1.0-56", "debian:6.12.100+deb12", "debian:6.12.117+deb12"]
    mixed = expand_kernels("debian:6.1.0-53..debian:6.1.0-54,debian:6.12.117+deb12", KERNELS)
    assert mixed == ["debian:6.1.0-53", "debian:6.1.0-54", "debian:6.12.117+deb12"]
    # Debian's 6.12 names carry +deb12/+deb13; a version or a line finds the host release's.
    assert expand_kernels("debian:6.12.100,debian:7.3,debian:6.12.100-cloud", KERNELS) == [
        "debian:6.12.100+deb12",
        "debian:7.3.4+deb13",
        "debian:6.12.100+deb12-cloud",
    ]
    with pytest.raises(InputError, match="debian: specs at both ends"):
        expand_kernels("/boot/vmlinuz..debian:6.1.0-56", KERNELS)


def test_bisect_command_input_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bisect", "--test", TEST]) == 2
    assert "name what to bisect" in capsys.readouterr().err
    assert (
        cli.main(["bisect", "--kernels", "debian:6.1.0-56,debian:6.12.117+deb12", "--test", "cow.nope"]) == 2
    )
    assert "--test cow.nope: no such test id" in capsys.readouterr().err
    assert cli.main(["bisect", "--kernels", "debian:6.1.0-56", "--test", TEST]) == 2
    assert "at least two kernels" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "bisect",
                "--kernels",
                "debian:6.1.0-56,debian:6.1.0-55",
                "--test",
                TEST,
                "--runs",
                "2",
                "--bad-threshold",
                "3",
            ]
        )
        == 2
    )
    assert "--bad-threshold 3" in capsys.readouterr().err
    assert cli.main(["bisect", "--src", "/nonexistent", "--good", "a", "--bad", "b", "--test", TEST]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "bisect",
                "--src",
                "/nonexistent",
                "--good",
                "a",
                "--bad",
                "b",
                "--test",
                TEST,
                "--base",
                "nosuchconfig",
            ]
        )
        == 2
    )
    assert "--base nosuchconfig: not one of tinyconfig" in capsys.readouterr().err


# ---- harness run --bisect-exit ------------------------------------------------------------


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """execute and kernel resolution faked: set box["out"] (a RunOutcome) or box["resolve"]."""
    box: dict[str, object] = {}

    def resolve(spec: str | None, progress: object = None) -> None:
        err = box.get("resolve")
        if isinstance(err, Exception):
            raise err

    def execute(req: object, progress: object = None) -> RunOutcome:
        out = box["out"]
        if isinstance(out, Exception):
            raise out
        assert isinstance(out, RunOutcome)
        return out

    monkeypatch.setattr("harness.kernels.kernel.resolve", resolve)
    monkeypatch.setattr(bisect_cmd, "execute", execute)
    return box


RUN = ["run", "--kernel", "/src/linux", "--filter", TEST, "--bisect-exit"]


@pytest.mark.parametrize(
    "oc,verdict,code,reverse_code",
    [
        (Outcome.OK, Verdict.PASS, 0, 1),
        (Outcome.NOT_OK, Verdict.XFAIL, 1, 0),  # judged on the outcome: not ok is bad
        (Outcome.SKIP, Verdict.SKIP, 125, 125),
    ],
)
def test_bisect_exit_codes(
    fake_run: dict[str, object],
    oc: Outcome,
    verdict: Verdict,
    code: int,
    reverse_code: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_run["out"] = outcome([case(TEST, oc, verdict)], 0 if verdict is not Verdict.FAIL else 1)
    assert cli.main(RUN) == code
    assert f"bisect-exit: {code}" in capsys.readouterr().out
    assert cli.main(RUN + ["--bisect-reverse"]) == reverse_code


def test_bisect_exit_verdict_judge(fake_run: dict[str, object]) -> None:
    fake_run["out"] = outcome([case(TEST, Outcome.NOT_OK, Verdict.XFAIL)])
    assert cli.main(RUN + ["--bisect-judge", "verdict"]) == 0


def test_bisect_exit_skips_what_the_commit_broke(fake_run: dict[str, object]) -> None:
    fake_run["resolve"] = BuildError("make bzImage failed: mm/util.c:3: error: expected ';'")
    assert cli.main(RUN) == 125
    fake_run["resolve"] = None
    not_run = [case(TEST, Outcome.ERROR, Verdict.ERROR, "not run: boot timeout")]
    fake_run["out"] = outcome(not_run, 2, "boot", "no sign of life")
    assert cli.main(RUN) == 125


def test_bisect_exit_aborts_on_harness_problems(
    fake_run: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_run["out"] = InputError("--filter cow.x: matches no test id")
    assert cli.main(RUN) == 128
    assert "git bisect run stops" in capsys.readouterr().err
    not_run = [case(TEST, Outcome.ERROR, Verdict.ERROR, "not run: qemu")]
    fake_run["out"] = outcome(not_run, 2, "build_guest", "initramfs failed")
    assert cli.main(RUN) == 128
    assert cli.main(["run", "--kernel", "x", "--bisect-exit"]) == 128  # no --filter
    assert cli.main(RUN + ["--repeat", "2"]) == 128
