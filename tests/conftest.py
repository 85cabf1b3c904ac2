"""Shared fixtures. vm tests boot real kernels; they need ci/setup.sh (QEMU, cached kernels)."""

from __future__ import annotations

import os
import shutil

import pytest

TEST_KERNEL = os.environ.get("HARNESS_TEST_KERNEL", "debian:6.12")
TEST_KERNEL_OLD = os.environ.get("HARNESS_TEST_KERNEL_OLD", "debian:6.1.0-56")
# The newest line, from trixie-backports through the harness's own apt state (split 6.19+ layout).
TEST_KERNEL_NEW = os.environ.get("HARNESS_TEST_KERNEL_NEW", "debian:7.3")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if shutil.which("qemu-system-x86_64"):
        return
    skip = pytest.mark.skip(reason="qemu-system-x86_64 not installed (run ci/setup.sh)")
    for item in items:
        if "vm" in item.keywords:
            item.add_marker(skip)
