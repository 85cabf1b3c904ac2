"""The wheel built from pyproject.toml holds every subpackage of harness, not only the top."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.helpers.paths import REPO


def test_wheel_contains_every_subpackage(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy: setuptools leaves build/ beside the project it builds
    shutil.copytree(REPO / "harness", src / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", src)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("harness-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = sorted(p.parent.relative_to(REPO).as_posix() for p in (REPO / "harness").rglob("__init__.py"))
    assert len(packages) > 1
    for pkg in packages:
        assert f"{pkg}/__init__.py" in names, pkg
    modules = [p.relative_to(REPO).as_posix() for p in (REPO / "harness").rglob("*.py")]
    assert sorted(m for m in modules if m not in names) == []
    assert "harness/py.typed" in names
