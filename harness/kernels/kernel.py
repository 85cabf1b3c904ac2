"""kernel.resolve(spec) → Kernel: a bzImage, its modules, release, upstream version and .config.

Specs: `debian:VERSION` (see debian.py), a bzImage path, or a built kernel tree.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import KernelError
from harness.judge.expect import parse_version
from harness.kernels import bzimage, debian, kbuild
from harness.model import Kernel, Progress

DEFAULT_KERNEL = "debian:6.12"


def parse_config(text: str) -> dict[str, str]:
    """A .config as a dict; `# CONFIG_X is not set` lines are left out (absent = unset)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, _, val = line.partition("=")
            out[key] = val.strip().strip('"')
    return out


def _read_bzimage(path: Path) -> bzimage.BzImageInfo:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KernelError(f"{path}: no such kernel file") from None
    except OSError as e:
        raise KernelError(f"{path}: cannot read kernel: {e.strerror}") from None
    return bzimage.inspect(data, str(path))


def _make(spec: str, bz: Path, config_path: Path | None, modules: Path | None, origin: str) -> Kernel:
    info = _read_bzimage(bz)
    config = parse_config(config_path.read_text()) if config_path and config_path.is_file() else {}
    if modules is not None and not (modules / "modules.dep").is_file():
        modules = None
    return Kernel(
        spec=spec,
        bzimage=bz,
        release=info.release,
        version=parse_version(bzimage.upstream_version_text(info.banner)),
        modules_dir=modules,
        config=config,
        config_path=config_path if config else None,
        origin=origin,
    )


def _from_debian(spec: str, progress: Progress) -> Kernel:
    ak = debian.resolve(spec.removeprefix("debian:"), progress)
    dk = debian.fetch(ak.package, progress, ak.suite)
    origin = f"debian:{dk.package} {dk.version}" + (f" ({dk.suite})" if dk.suite else "")
    if dk.modules_dir is None:
        # 6.19, 7.0 and 7.1 in the archive as of 2026-12: linux-binary-X without linux-modules-X.
        origin += f"; no modules: {', '.join(dk.missing) or 'none in the package'} not in the archive"
    return _make(spec, dk.bzimage, dk.config_path, dk.modules_dir, origin)


def _from_tree(spec: str, tree: Path) -> Kernel:
    bz = tree / "arch" / "x86" / "boot" / "bzImage"
    if not bz.is_file():
        raise KernelError(f"{tree}: kernel tree has no arch/x86/boot/bzImage (build it first)")
    release_file = tree / "include" / "config" / "kernel.release"
    release = release_file.read_text().strip() if release_file.is_file() else ""
    # Modules installed by `harness build` (INSTALL_MOD_PATH=<tree>/.harness-modules).
    mods = tree / ".harness-modules" / "lib" / "modules" / release if release else None
    return _make(spec, bz, tree / ".config", mods, f"tree:{tree}")


def _from_file(spec: str, bz: Path) -> Kernel:
    info = _read_bzimage(bz)
    # A config next to the image (Debian layout: config-<release>), or in the tree it came from.
    candidates = [bz.parent / f"config-{info.release}", bz.parent / ".config"]
    if bz.parent.name == "boot" and bz.parent.parent.name == "x86":
        candidates.append(bz.parents[3] / ".config")
    cfg = next((c for c in candidates if c.is_file()), None)
    mods = bz.parent.parent / "lib" / "modules" / info.release
    return _make(spec, bz, cfg, mods if mods.is_dir() else None, f"bzimage:{bz}")


def resolve(spec: str | None, progress: Progress = lambda s: None) -> Kernel:
    spec = spec or DEFAULT_KERNEL
    if spec.startswith("debian:"):
        return _from_debian(spec, progress)
    path = Path(spec).expanduser()
    if path.is_dir():
        # A source tree is built first (out of tree, in the cache) when stale; so is a build
        # dir made by `harness build` whose tree changed since. Cheap when nothing changed.
        return _from_tree(spec, kbuild.for_run(path, progress))
    if path.exists():
        return _from_file(spec, path)
    raise KernelError(f"{spec}: no such kernel file or tree (and not a debian:VERSION spec)")
