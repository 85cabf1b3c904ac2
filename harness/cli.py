"""The `harness` command: arguments → a frozen request → one stage call. Errors become exit codes here."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import __version__, safetext, signals
from harness.bisect import bisect_cmd
from harness.errors import HarnessError
from harness.judge import expreport_cmd
from harness.kernels import aptstate, debian, kbuild, sources
from harness.kernels.kernel import DEFAULT_KERNEL
from harness.kernels.kernel import resolve as resolve_kernel
from harness.model import TransportKind
from harness.paths import cache_dir
from harness.report import terminal
from harness.run import runopts
from harness.run.runner import execute
from harness.series import series_cmd
from harness.suites import registry as suites
from harness.vm import qemu, snapshot
from harness.vm.machine import accel_plan


def _progress(msg: str) -> None:
    print(safetext.terminal_text(msg), file=sys.stderr, flush=True)


def _error_line(msg: str) -> str:
    """The one `harness: error:` line: guest text in it (a boot panic, dropbear's log) shown
    literally, never as terminal control."""
    return f"harness: error: {safetext.terminal_line(msg)}"


def _add_run(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="boot a kernel, run the suites, write verdicts")
    p.add_argument(
        "--kernel",
        metavar="SPEC",
        action="append",
        help=f"debian:VERSION, a bzImage, or a built tree (default {DEFAULT_KERNEL}); repeat for a matrix",
    )
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="GLOB",
        help="only case ids matching GLOB (repeatable)",
    )
    p.add_argument("--junit", type=Path, metavar="FILE", help="also write the JUnit XML here")
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="run directory (default ./harness-runs/<time>-<kernel>)"
    )
    p.add_argument(
        "--out-reuse",
        action="store_true",
        help="--out may hold an earlier run: remove its files first (else that is refused)",
    )
    p.add_argument(
        "--transport", type=TransportKind, choices=list(TransportKind), default=TransportKind.CONSOLE
    )
    p.add_argument(
        "--pinner",
        choices=suites.PINNERS,
        default="auto",
        help="cow_gup's long-term pins: the kernel's gup_test if it has one, else the harness_pin "
        "module (auto, default), or only that one",
    )
    p.add_argument(
        "--snapshot",
        choices=["auto", "off"],
        default="auto",
        help="auto (default): fresh guests are restored from a cached snapshot of the booted guest "
        "(saved by the first cold boot; `harness cache`); off: every guest boots cold",
    )
    p.add_argument(
        "--isolate",
        choices=["none", "program", "case"],
        default="none",
        help="program: every test program runs in a pristine guest (restored from the snapshot); "
        "case: every case does (a kselftest program runs whole)",
    )
    p.add_argument(
        "--list", action="store_true", help="print the selected ids with their expectation, run nothing"
    )
    shown = p.add_mutually_exclusive_group()
    shown.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="at the end, list every case that did not pass, one per line (as summary.txt)",
    )
    shown.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="at the end, show only the unexpected cases and the verdict line",
    )
    runopts.add_each_run_arguments(p, title="the guest and the judge")
    runopts.add_run_arguments(p)
    bisect_cmd.add_run_arguments(p)


def _expand_kernel_sets(specs: list[str] | None) -> list[str] | None:
    """`debian:lines` → the newest package of every line whose packages are complete;
    `debian:lines-all` → every line, the ones without modules too."""
    if not specs:
        return specs
    out: list[str] = []
    for spec in specs:
        if spec in ("debian:lines", "debian:lines-all"):
            kernels = debian.lines(debian.available(_progress), complete_only=spec == "debian:lines")
            out += [k.spec for k in kernels]
        else:
            out.append(spec)
    return out


def _cmd_run(a: argparse.Namespace) -> int:
    a.kernel = _expand_kernel_sets(a.kernel)
    req = dataclasses.replace(
        runopts.request_of(a),
        kernel=a.kernel[0] if a.kernel else None,
        junit=a.junit,
        out=a.out,
        transport=TransportKind(a.transport),
        pinner=a.pinner,
        out_reuse=a.out_reuse,
        snapshot=a.snapshot,
        isolate=a.isolate,
    )
    if a.bisect_exit:  # under `git bisect run`: 0 good, 1 bad, 125 skip, 128 abort
        return bisect_cmd.run_for_git_bisect(a, req, _progress)
    plan = runopts.dispatch(a, req, _progress)  # several kernels or --repeat: a matrix, run there
    if isinstance(plan, int):
        return plan
    req = plan.request  # --shard applied
    if a.list:
        runopts.print_list(req, _progress)
        return 0
    out = execute(req, _progress)
    runopts.write_reports(out.run_dir, _progress)
    if out.bad_input:  # one line, not 423 "not run" lines before it (the run dir has them)
        print(_error_line(out.error), file=sys.stderr)
        return out.exit_code
    detail = terminal.detail_of(a.verbose, a.quiet)
    if out.crosscheck and detail != "quiet":
        print(out.crosscheck)
    print(terminal.run_summary(out.results, detail))
    if detail != "quiet" or out.exit_code != 0:  # quiet: the run dir only when there is something to look at
        print(f"run dir: {out.run_dir}")
    if out.error:
        print(_error_line(out.error), file=sys.stderr)
    return plan.finish(out.run_dir, out.exit_code)  # --baseline: compare, a regression exits 1


def _print_available(flavours: bool) -> None:
    kernels = debian.available(_progress)
    shown = [k for k in kernels if flavours or not k.flavour]
    line = ""
    for k in sorted(shown, key=lambda k: (k.flavour, k.key())):
        if k.line != line:
            line = k.line
            print(f"{line} line (debian:{line}):")
        note = "" if k.modules else "  (no modules in the archive: boots without them)"
        up = ".".join(map(str, k.upstream))
        print(f"  {k.spec:30s} {up:9s} {k.deb_version:22s} {k.suite}{note}")
    if not flavours:
        print("(-cloud and -rt flavours too: harness kernel list --available --flavours)")


def _cmd_kernel(a: argparse.Namespace) -> int:
    if a.action == "update":
        aptstate.update(_progress)
        n = len(debian.available(_progress))
        print(
            f"harness apt state updated: {n} kernel packages in {len(aptstate.SUITES)} suites ({aptstate.root()})"
        )
        return 0
    if a.action == "list" and a.available:
        _print_available(a.flavours)
        return 0
    if a.action == "list":
        for pkg in debian.cached_packages():
            dk = debian.load_cached(pkg)
            assert dk is not None
            print(
                f"debian:{pkg.removeprefix('linux-image-').removesuffix('-amd64'):28s} {dk.version:24s} {dk.root}"
            )
        if not debian.cached_packages():
            print(f"(no kernels cached under {cache_dir() / 'kernels'})")
        return 0
    for spec in a.specs or [DEFAULT_KERNEL]:
        k = resolve_kernel(spec, _progress)
        print(f"{spec}: {k.release} ({k.version}) {k.bzimage}")
    return 0


_TOOLS = [
    ("qemu-system-x86_64", "apt-get install qemu-system-x86", True),
    ("busybox", "apt-get install busybox-static", True),
    ("gcc", "apt-get install gcc", True),
    ("make", "apt-get install make", True),
    ("depmod", "apt-get install kmod", True),
    ("dpkg-deb", "apt-get install dpkg", True),
    ("apt-get", "a Debian system", True),
    ("dropbear", "apt-get install dropbear-bin (only for --transport ssh)", False),
    ("dropbearkey", "apt-get install dropbear-bin (only for --transport ssh)", False),
    ("flex", "apt-get install flex bison bc libelf-dev libssl-dev (only for harness build)", False),
    ("bison", "apt-get install bison (only for harness build)", False),
    ("ccache", "apt-get install ccache (harness build uses it when present)", False),
    ("git", "apt-get install git (only for harness bisect --src and harness series)", False),
    ("rdma", "apt-get install iproute2 (the guest makes its soft-RoCE device with rdma link add)", False),
]


def _cmd_doctor(a: argparse.Namespace) -> int:
    missing = 0
    for tool, how, required in _TOOLS:
        path = shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None)
        state = "ok" if path else ("MISSING" if required else "missing (optional)")
        missing += bool(required and not path)
        print(f"{tool:22s} {state:20s} {path or how}")
    checks = [
        (
            "liburing.a",
            Path("/usr/lib/x86_64-linux-gnu/liburing.a").is_file(),
            "apt-get install liburing-dev",
            True,
        ),
        (
            "librxe-rdmav34.a",
            Path("/usr/lib/x86_64-linux-gnu/librxe-rdmav34.a").is_file(),
            "apt-get install libibverbs-dev ibverbs-providers (cow_rdma; without them its cases SKIP)",
            False,
        ),
        (
            "/usr/bin/python3",
            Path("/usr/bin/python3").is_file(),
            "apt-get install python3 (the guest's probes run it)",
            True,
        ),
        (
            "/dev/kvm",
            qemu.kvm_openable(),
            "no KVM: guests run under TCG (slower); auto falls back by itself",
            False,
        ),
    ]
    for name, ok, how, required in checks:
        state = "ok" if ok else ("MISSING" if required else "not usable")
        missing += bool(required and not ok)
        print(f"{name:22s} {state:20s} {'' if ok else how}")
    plan, why = accel_plan("auto")
    print(f"{'accel auto':22s} {'/'.join(plan):20s} {why}")
    cached = debian.cached_packages()
    print(f"{'kernel cache':22s} {len(cached)} kernel(s)     {cache_dir() / 'kernels'}")
    if missing:
        print(f"{missing} required tool(s) missing: run ci/setup.sh")
    return 1 if missing else 0


def _cmd_source(a: argparse.Namespace) -> int:
    if a.action == "list":
        trees = sources.cached()
        for t in trees:
            print(f"{t.spec:14s} {t.package} {t.version:24s} {t.root}")
        if not trees:
            print(f"(no source trees under {sources.sources_cache()})")
        return 0
    for spec in a.specs or ["debian:6.12"]:
        print(sources.fetch(spec, _progress).root)
    return 0


def _cmd_build(a: argparse.Namespace) -> int:
    req = kbuild.BuildRequest(src=a.src, fragments=tuple(a.fragment), base=a.base, out=a.out, jobs=a.jobs)
    res = kbuild.build(req, _progress)
    print(res.build_dir)
    return 0


def _add_build(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]

    b = sub.add_parser("build", help="configure and build a kernel tree (out of tree, incremental)")
    b.add_argument("--src", type=Path, required=True, metavar="TREE", help="kernel source tree")
    b.add_argument(
        "--fragment",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="config fragment merged over the base (repeatable; e.g. kernels/lean.config)",
    )
    b.add_argument(
        "--base",
        default=kbuild.DEFAULT_BASE,
        metavar="BASE",
        help=f"{'|'.join(kbuild.BASES)} or a config file (default {kbuild.DEFAULT_BASE})",
    )
    b.add_argument(
        "--out", type=Path, metavar="DIR", help="build dir (default: one per tree and config in the cache)"
    )
    b.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, metavar="N")
    s = sub.add_parser("source", help="fetch or list kernel source trees")
    s.add_argument("action", choices=["list", "fetch"])
    s.add_argument("specs", nargs="*", metavar="SPEC", help="debian:6.12 or debian:6.1")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="harness", description="Test a kernel's copy-on-write and page-pinning behaviour under QEMU."
    )
    p.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _add_run(sub)
    k = sub.add_parser("kernel", help="list, fetch or update the kernels the harness knows")
    k.add_argument(
        "action",
        choices=["list", "fetch", "update"],
        help="list: cached kernels (--available: every one the Debian suites offer); "
        "fetch SPEC...: download into the cache; update: refresh the harness's apt lists",
    )
    k.add_argument(
        "--available",
        action="store_true",
        help="with list: every line and version that can be fetched, with its suite",
    )
    k.add_argument(
        "--flavours", action="store_true", help="with list --available: the -cloud and -rt flavours too"
    )
    k.add_argument("specs", nargs="*", metavar="SPEC")
    sub.add_parser("doctor", help="say what is missing and how to get it")
    c = sub.add_parser("cache", help="show or prune the cached guest snapshots")
    c.add_argument("action", choices=["show", "prune"])
    c.add_argument(
        "--keep", type=int, metavar="N", help="with prune: keep the N most recently used (0: remove all)"
    )
    runopts.add_commands(sub)
    bisect_cmd.add_command(sub)
    series_cmd.add_command(sub)
    expreport_cmd.add_command(sub)
    _add_build(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "bisect": lambda a: bisect_cmd.cmd_bisect(a, _progress),
        "series": lambda a: series_cmd.cmd_series(a, _progress),
        "run": _cmd_run,
        "kernel": _cmd_kernel,
        "doctor": _cmd_doctor,
        "compare": runopts.cmd_compare,
        "report": runopts.cmd_report,
        "lava": runopts.cmd_lava,
        "build": _cmd_build,
        "source": _cmd_source,
        "cache": lambda a: snapshot.cmd_cache(a.action, a.keep),
        "expectations": lambda a: expreport_cmd.cmd_expectations(a, _progress),
    }
    try:
        if a.command in ("run", "bisect", "series", "build"):
            runopts.check_numbers(a)  # before a kernel is fetched or a guest built
        with signals.sigterm_as_interrupt():  # a CI cancel ends like Ctrl-C: reports written
            code: int = handlers[a.command](a)
            return code
    except HarnessError as e:
        if getattr(a, "bisect_exit", False):  # under git bisect run, where 2 would mean "bad"
            return bisect_cmd.git_abort(safetext.terminal_line(str(e)))
        print(_error_line(str(e)), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        code = signals.exit_code(e)
        print(f"harness: {signals.reason(code)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
