"""Headers to build an out-of-tree module against a Debian kernel, from the harness's apt state.

`linux-headers-X` holds the arch part and a one-line Makefile that includes
`/usr/src/linux-headers-X-common/Makefile` by its absolute path; its `scripts` link points at
`../../lib/linux-kbuild-V/scripts`. The three packages (headers, common, kbuild) are unpacked
into one root under $XDG_CACHE_HOME/harness/headers/<release>/, where the relative links work as
they are, and the absolute /usr/src and /usr/lib/linux-kbuild paths in the Makefiles are
rewritten to that root. The host's /usr/src is never touched.

A module must be built with the compiler the kernel was (CONFIG_CC_VERSION_TEXT): trixie's
kernels use gcc-14, whose flags bookworm's gcc-12 rejects. `compiler_for` says which one to use
or why none will do.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness.errors import BuildError, KernelError
from harness.kernels import aptstate
from harness.model import Kernel, Progress
from harness.paths import cache_dir

_DONE = ".harness-unpacked"


def gcc_major(cc_version_text: str) -> int | None:
    """`x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0` → 14; None if not gcc (pure)."""
    m = re.search(r"gcc\S* \([^)]*\) (\d+)\.", cc_version_text) or re.search(r"gcc-(\d+)", cc_version_text)
    return int(m.group(1)) if m else None


def compiler_for(
    kernel: Kernel, which: Callable[[str], str | None] = shutil.which, host_major: int | None = None
) -> str:
    """The gcc to build a module for this kernel with: `gcc-N` if installed, else plain `gcc`
    when it is that major version. Raises BuildError naming what is missing otherwise."""
    want = gcc_major(kernel.config.get("CONFIG_CC_VERSION_TEXT", ""))
    if want is None:
        return "gcc"
    if which(f"gcc-{want}"):
        return f"gcc-{want}"
    if host_major is None:
        r = subprocess.run(["gcc", "-dumpversion"], capture_output=True, text=True)
        host_major = int(r.stdout.split(".")[0]) if r.returncode == 0 and r.stdout[:1].isdigit() else None
    if host_major == want:
        return "gcc"
    raise BuildError(
        f"{kernel.release} was built with gcc-{want} and this host has "
        f"{'gcc-' + str(host_major) if host_major else 'no gcc'}: a module cannot be built for it here"
    )


def rewrite_abs_paths(text: str, root: Path) -> str:
    """Point /usr/src/... and /usr/lib/linux-kbuild-... at the unpacked root (pure)."""
    return re.sub(r"(?<![\w/.])/usr/(src|lib/linux-kbuild)", lambda m: f"{root}/usr/{m.group(1)}", text)


def headers_dir() -> Path:
    return cache_dir() / "headers"


def for_debian(release: str, progress: Progress = lambda s: None) -> Path:
    """The unpacked headers tree for a Debian kernel release (7.3.4+deb13-amd64), fetched from
    the harness's apt state on first use."""
    root = headers_dir() / release
    tree = root / "usr" / "src" / f"linux-headers-{release}"
    if (root / _DONE).is_file():
        return tree
    main = f"linux-headers-{release}"
    aptstate.ensure_fresh(progress)
    parts = [main] + [
        d for d in aptstate.depends(main) if d.startswith(("linux-headers-", "linux-kbuild-")) and d != main
    ]
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".fetch-") as tmp:
        got = aptstate.download(parts, Path(tmp), progress, required=True)
        missing = [p for p in parts if p not in got]
        if missing:
            raise KernelError(f"headers for {release}: {', '.join(missing)} cannot be downloaded")
        stage = Path(tmp) / "root"
        for deb in got.values():
            subprocess.run(["dpkg-deb", "-x", str(deb), str(stage)], check=True)
        for mk in (stage / "usr" / "src").rglob("Makefile*"):
            if mk.is_file() and not mk.is_symlink():
                text = mk.read_text(errors="surrogateescape")
                new = rewrite_abs_paths(text, root)
                if new != text:
                    mk.write_text(new, errors="surrogateescape")
        if root.exists():
            shutil.rmtree(root)
        stage.rename(root)
        (root / _DONE).write_text("\n".join(parts) + "\n")
    if not (tree / "Makefile").is_file():
        raise KernelError(
            f"headers for {release}: no {tree.relative_to(root)}/Makefile in {', '.join(parts)}"
        )
    return tree
