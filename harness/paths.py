"""Where the harness keeps things on the host: the cache (kernels, builds) and run dirs."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/harness (default ~/.cache/harness). Created on demand by callers."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "harness"


def kernels_cache() -> Path:
    return cache_dir() / "kernels"
