"""`harness build`: configure and build a kernel tree out of tree (O=), incrementally.

One build dir per source tree and configuration (base + fragment names), kept in the cache, so
the next build of a nearby commit in the same tree only recompiles what changed. Steps: base
config (`make tinyconfig`/`defconfig`, or a file) → fragments merged (kconfig.merge) →
`make olddefconfig` → every fragment option checked to have survived (a dropped one is an error
naming the unmet dependency, read from the tree's Kconfig) → `make bzImage [modules]` with ccache
when installed → modules_install + depmod into <build dir>/.harness-modules.

A build dir has the layout harness/kernels/kernel.py resolves (arch/x86/boot/bzImage, .config,
include/config/kernel.release), plus harness-build.json (what it was built from) and build.log.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import BuildError, InputError, ToolMissing
from harness.kernels import kconfig
from harness.model import Progress
from harness.paths import REPO_ROOT, cache_dir

BASES = ("tinyconfig", "defconfig", "allnoconfig")
DEFAULT_BASE = "tinyconfig"
DEFAULT_FRAGMENTS = (REPO_ROOT / "kernels" / "lean.config", REPO_ROOT / "kernels" / "cow.config")
RECORD = "harness-build.json"
LOG = "build.log"
PROGRESS_EVERY_S = 30.0
_ERROR = re.compile(r"(?:^|\s)(?:error|fatal error):|\*\*\* |Error \d+", re.IGNORECASE)
_OBJ = re.compile(r"^\s+(?:CC|AS|LD|AR)\s+(?:\[M\]\s+)?(\S+)")


@dataclass(frozen=True)
class BuildRequest:
    src: Path
    fragments: tuple[Path, ...] = ()
    base: str = DEFAULT_BASE  # tinyconfig | defconfig | allnoconfig | a config file path
    out: Path | None = None
    jobs: int = os.cpu_count() or 1
    reproducible: bool = False  # fixed build timestamp/version/user/host (bisect's no-op check)


@dataclass(frozen=True)
class BuildResult:
    build_dir: Path
    bzimage: Path
    release: str
    modules: bool
    configured: bool  # False: the configuration was unchanged and not redone
    seconds: float


def is_source_tree(path: Path) -> bool:
    return (path / "Makefile").is_file() and (path / "Kconfig").is_file() and (path / "mm").is_dir()


def tree_key(src: Path) -> str:
    real = str(src.resolve())
    return f"{src.resolve().name}-{hashlib.sha256(real.encode()).hexdigest()[:8]}"


def default_build_dir(src: Path, base: str, fragments: tuple[Path, ...]) -> Path:
    """cache/builds/<tree>-<hash of its path>/<base>+<fragment names>: per tree and config."""
    b = Path(base).stem if base not in BASES else base
    cfg = "+".join([b, *(f.stem for f in fragments)])
    return cache_dir() / "builds" / tree_key(src) / cfg


def _inputs_digest(req: BuildRequest) -> str:
    h = hashlib.sha256(req.base.encode())
    if req.base not in BASES:
        h.update(Path(req.base).read_bytes())
    for f in req.fragments:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _make_cmd(req: BuildRequest, bd: Path, *targets: str) -> list[str]:
    cmd = ["make", "-C", str(req.src), f"O={bd}", f"-j{req.jobs}"]
    if shutil.which("ccache"):
        cmd.append("CC=ccache gcc")
    return cmd + list(targets)


# What kbuild otherwise stamps into the kernel from the clock and the machine (init/version.c,
# the #N of .version): fixed, two builds of trees that compile the same are byte-identical.
REPRODUCIBLE_ENV = {
    "KBUILD_BUILD_TIMESTAMP": "1970-01-01 00:00:00 UTC",
    "KBUILD_BUILD_VERSION": "1",
    "KBUILD_BUILD_USER": "harness",
    "KBUILD_BUILD_HOST": "harness",
}


def fingerprint(build_dir: str | Path) -> str:
    """ "vmlinux:<sha256>" (or "bzImage:<sha256>" without a vmlinux) of a build dir, "" if neither."""
    bd = Path(build_dir)
    for name, p in (("vmlinux", bd / "vmlinux"), ("bzImage", bd / "arch" / "x86" / "boot" / "bzImage")):
        if p.is_file():
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            return f"{name}:{h.hexdigest()}"
    return ""


def _run_logged(
    cmd: list[str], log: Path, step: str, progress: Progress, env: dict[str, str] | None = None
) -> None:
    """Run a make step, appending its output to the build log, with a progress line every
    PROGRESS_EVERY_S; a failure is a BuildError with the first error line."""
    t0 = time.monotonic()
    last_say, objects, last_obj = t0, 0, ""
    with open(log, "a") as f:
        f.write(f"\n### {step}: {' '.join(cmd)}\n")
        f.flush()
        p = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=dict(os.environ, LC_ALL="C", **(env or {})),
        )
        assert p.stdout is not None
        for line in p.stdout:
            f.write(line)
            if (m := _OBJ.match(line)) is not None:
                objects, last_obj = objects + 1, m.group(1)
            now = time.monotonic()
            if now - last_say >= PROGRESS_EVERY_S:
                progress(f"  {step}: {now - t0:.0f}s, {objects} objects built, last {last_obj}")
                last_say = now
        rc = p.wait()
    if rc != 0:
        raise BuildError(f"{step} failed: {first_error(log.read_text(errors='replace'), step)} (log: {log})")


def first_error(log_text: str, step: str = "") -> str:
    """The first compiler/make error line of the last step in a build log (pure)."""
    part = log_text.rsplit("\n### ", 1)[-1] if step else log_text
    for line in part.splitlines()[1:] if step else part.splitlines():
        if _ERROR.search(line):
            return line.strip()
    tail = [ln.strip() for ln in part.splitlines() if ln.strip()]
    return tail[-1] if tail else "(no output)"


def _read_tree(src: Path) -> Callable[[str], str | None]:
    def read(rel: str) -> str | None:
        p = src / rel
        return p.read_text(errors="replace") if p.is_file() else None

    return read


def check_survived(src: Path, fragments: tuple[Path, ...], final: kconfig.Config) -> None:
    """Every option a fragment sets must be in the final config as asked; else a one-line
    InputError naming the first dropped option and the dependency that is missing."""
    wanted: dict[str, tuple[str, str]] = {}
    for f in fragments:
        for k, v in kconfig.parse(f.read_text()).items():
            wanted[k] = (v, _display(f))
    lost = kconfig.dropped(wanted, final)
    if not lost:
        return
    d = lost[0]
    defs = kconfig.definitions(_read_tree(src), d.option.removeprefix("CONFIG_"))
    more = f" (and {len(lost) - 1} more: {', '.join(x.option for x in lost[1:4])})" if len(lost) > 1 else ""
    raise InputError(kconfig.explain(d, defs, final) + more)


def _display(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def configure(req: BuildRequest, bd: Path, progress: Progress) -> bool:
    """Base + fragments + olddefconfig + survival check. Skipped (False) when the inputs and
    the resulting .config are unchanged since the last build in this dir."""
    bd.mkdir(parents=True, exist_ok=True)
    log = bd / LOG
    digest = _inputs_digest(req)
    rec = load_record(bd)
    cfg = bd / ".config"
    if rec.get("inputs") == digest and cfg.is_file() and rec.get("config_sha") == _sha(cfg):
        return False
    log.write_text("")
    progress(f"configuring {bd} ({req.base} + {', '.join(f.name for f in req.fragments) or 'no fragments'})")
    if req.base in BASES:
        _run_logged(_make_cmd(req, bd, req.base), log, f"make {req.base}", progress)
        base_text = cfg.read_text()
    else:
        base_text = Path(req.base).read_text()
    merged = kconfig.merge(base_text, [kconfig.parse(f.read_text()) for f in req.fragments])
    cfg.write_text(merged)
    _run_logged(_make_cmd(req, bd, "olddefconfig"), log, "make olddefconfig", progress)
    check_survived(req.src, req.fragments, kconfig.parse(cfg.read_text()))
    _save_record(
        bd,
        {
            "src": str(req.src.resolve()),
            "base": req.base,
            "fragments": [str(f.resolve()) for f in req.fragments],
            "inputs": digest,
            "config_sha": _sha(cfg),
        },
    )
    return True


def _save_record(bd: Path, fields: dict[str, object]) -> None:
    rec = load_record(bd)
    rec.update(fields)
    (bd / RECORD).write_text(json.dumps(rec, indent=2) + "\n")


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def load_record(bd: Path) -> dict[str, object]:
    try:
        data = json.loads((bd / RECORD).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def check_config_inputs(
    fragments: tuple[Path, ...], base: str | None = None, base_flag: str = "--base"
) -> None:
    """The fragments exist, and the base config is one of BASES or a file (InputError)."""
    for f in fragments:
        if not f.is_file():
            raise InputError(f"--fragment {f}: no such file")
    if base is not None and base not in BASES and not Path(base).is_file():
        raise InputError(f"{base_flag} {base}: not one of {', '.join(BASES)} and no such file")


def _validate(req: BuildRequest) -> None:
    if not is_source_tree(req.src):
        raise InputError(f"--src {req.src}: not a kernel source tree (no Makefile/Kconfig/mm)")
    check_config_inputs(req.fragments, req.base)
    for tool in ("make", "gcc", "flex", "bison", "bc"):
        if not shutil.which(tool):
            raise ToolMissing(f"{tool} not found: run ci/setup.sh (kernel build dependencies)")


def build(req: BuildRequest, progress: Progress = lambda s: None) -> BuildResult:
    """Configure (if needed) and build; returns where the kernel is."""
    _validate(req)
    t0 = time.monotonic()
    bd = (req.out or default_build_dir(req.src, req.base, req.fragments)).resolve()
    configured = configure(req, bd, progress)
    final = kconfig.parse((bd / ".config").read_text())
    modules = final.get("CONFIG_MODULES") == "y"
    targets = ["bzImage", "modules"] if modules else ["bzImage"]
    progress(
        f"building {' '.join(targets)} in {bd} (-j{req.jobs}{', ccache' if shutil.which('ccache') else ''}; log {bd / LOG})"
    )
    _run_logged(
        _make_cmd(req, bd, *targets),
        bd / LOG,
        "make " + " ".join(targets),
        progress,
        REPRODUCIBLE_ENV if req.reproducible else None,
    )
    release = (bd / "include" / "config" / "kernel.release").read_text().strip()
    if modules:
        _install_modules(req, bd, release, progress)
    _save_record(
        bd,
        {
            "release": release,
            "built_at": time.time(),
            "config_sha": _sha(bd / ".config"),
            "seconds": round(time.monotonic() - t0, 1),
        },
    )
    dt = time.monotonic() - t0
    progress(f"built {release} in {dt:.0f}s")
    return BuildResult(bd, bd / "arch" / "x86" / "boot" / "bzImage", release, modules, configured, dt)


def compile_w1(req: BuildRequest, sources: list[str], timeout_s: float = 1800.0) -> str:
    """`make W=1 -k` of these C files' objects in the (built) build dir: the output, for its
    warnings. Not an error when it fails: a file the configuration does not build has none.
    (The next ordinary build recompiles these objects: their flags changed.)"""
    bd = (req.out or default_build_dir(req.src, req.base, req.fragments)).resolve()
    objs = [s[:-2] + ".o" for s in sources if s.endswith(".c")]
    if not objs:
        return ""
    env = dict(os.environ, LC_ALL="C", **(REPRODUCIBLE_ENV if req.reproducible else {}))
    try:
        r = subprocess.run(
            _make_cmd(req, bd, "-k", "W=1", *objs),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout
        return out.decode(errors="replace") if isinstance(out, bytes) else (out or "")
    return r.stdout


def _install_modules(req: BuildRequest, bd: Path, release: str, progress: Progress) -> None:
    dest = bd / ".harness-modules"
    shutil.rmtree(dest, ignore_errors=True)
    depmod = shutil.which("depmod") or "/sbin/depmod"
    cmd = _make_cmd(req, bd, "modules_install") + [f"INSTALL_MOD_PATH={dest}", f"DEPMOD={depmod}"]
    _run_logged(cmd, bd / LOG, "make modules_install", progress)
    if not (dest / "lib" / "modules" / release / "modules.dep").is_file():
        r = subprocess.run([depmod, "-b", str(dest), release], capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"depmod failed: {r.stderr.strip()[:200]}")


# ---- staleness (harness run --kernel TREE) ----------------------------------------------


def newest_source_mtime(src: Path, skip: Path | None = None) -> float:
    """Newest mtime of any file in the tree (without .git and the build dir): ~0.5 s for a
    kernel tree, cheap next to a `make` that finds nothing to do (tens of seconds)."""
    newest = 0.0
    skip_s = str(skip.resolve()) if skip else ""
    stack = [str(src)]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    if e.name != ".git" and not e.name.startswith(".harness") and e.path != skip_s:
                        stack.append(e.path)
                elif e.name != ".config":
                    try:
                        newest = max(newest, e.stat(follow_symlinks=False).st_mtime)
                    except OSError:
                        pass
    return newest


def is_stale(src: Path, bd: Path, fragments: tuple[Path, ...] = ()) -> bool:
    bz = bd / "arch" / "x86" / "boot" / "bzImage"
    if not bz.is_file() or not (bd / RECORD).is_file():
        return True
    built = bz.stat().st_mtime
    if any(f.stat().st_mtime > built for f in fragments if f.is_file()):
        return True
    return newest_source_mtime(src, skip=bd) > built


def for_run(path: Path, progress: Progress) -> Path:
    """The directory `harness run --kernel PATH` should boot from, building it first when
    stale: a build dir of ours is rebuilt from its recorded source and fragments; a source
    tree without an in-tree bzImage gets the default build (tinyconfig + lean + cow)."""
    rec = load_record(path)
    if rec:
        src = Path(str(rec["src"]))
        frags = tuple(Path(str(f)) for f in rec.get("fragments", []))  # type: ignore[attr-defined]
        req = BuildRequest(src, frags, str(rec.get("base", DEFAULT_BASE)), path)
    elif is_source_tree(path) and not (path / "arch" / "x86" / "boot" / "bzImage").is_file():
        req = BuildRequest(path, DEFAULT_FRAGMENTS, DEFAULT_BASE)
    else:
        return path  # an in-tree build or a plain directory: used as it is
    bd = (req.out or default_build_dir(req.src, req.base, req.fragments)).resolve()
    if is_stale(req.src, bd, req.fragments):
        progress(f"{bd} is missing or older than {req.src}: building it first")
        build(BuildRequest(req.src, req.fragments, req.base, bd, req.jobs), progress)
    return bd


def source_of(path: Path) -> Path | None:
    """The source tree behind a kernel dir: itself, or the tree a build dir was built from."""
    rec = load_record(path)
    if rec.get("src"):
        return Path(str(rec["src"]))
    if is_source_tree(path):
        return path
    link = path / "source"  # kbuild's O= dirs point back at their tree
    if link.is_symlink() and is_source_tree(link.resolve()):
        return link.resolve()
    return None
