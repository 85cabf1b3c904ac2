"""Shared fixtures. vm tests boot real kernels; they need ci/setup.sh (QEMU, cached kernels)."""

from __future__ import annotations

import shutil

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if shutil.which("qemu-system-x86_64"):
        return
    skip = pytest.mark.skip(reason="qemu-system-x86_64 not installed (run ci/setup.sh)")
    for item in items:
        if "vm" in item.keywords:
            item.add_marker(skip)
