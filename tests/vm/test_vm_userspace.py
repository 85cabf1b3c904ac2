"""--userspace image on a real kernel: the probes' python3 and cow_rdma's rdma tool come from the
harness's userspace image (harness/vm/userspace.py), not the host's /usr over 9p."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.vm import userspace
from tests.helpers.cli_run import harness_run
from tests.helpers.kernels import TEST_KERNEL


@pytest.mark.vm
def test_probes_and_rdma_run_on_the_userspace_image(tmp_path: Path) -> None:
    """The probes' python3 and cow_rdma's `rdma` tool come from the image, not the host's /usr."""
    r = harness_run(
        tmp_path / "run",
        "--kernel",
        TEST_KERNEL,
        "--userspace",
        "image",
        "--filter",
        "probe.pfnmap.vvar.*",
        "--filter",
        "cow.rdma-ro.*.base",
    )
    assert r.rc == 0, r.stderr[-3000:]
    v = r.verdicts()
    assert len(v) == 7 and set(v.values()) == {"PASS"}, v
    fp = r.fingerprint()
    us = fp["userspace"]
    assert us["kind"] == "image" and Path(us["image"]).name == userspace.IMAGE_NAME
    assert us["packages"]["python3-minimal"] and us["packages"]["iproute2"]
    assert fp["guest"]["rdma"] == "rxe0"  # the soft-RoCE link was made with the image's rdma tool
    names = [Path(m).name.split(".")[0] for m in fp["machine"]["modules_loaded"]]
    assert "squashfs" in names and "9p" not in names
