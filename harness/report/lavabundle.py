"""`harness lava`: the artefacts and job definition of a LAVA job for one kernel, in a directory.

DIR/bzImage, DIR/initramfs.cpio.gz, DIR/scratch-ext4.img.gz, DIR/scratch-swap.img.gz (the
artefacts), DIR/job.yaml (URLs under --url-base, or file:// paths into DIR when there is none),
DIR/device.yaml (a QEMU x86-64 device for running the job locally with lava-run), and
DIR/agent.sh (what the guest runs, for reading).
"""

from __future__ import annotations

import gzip
import secrets
import shutil
from pathlib import Path

from harness.kernels.kernel import resolve as resolve_kernel
from harness.model import Progress
from harness.report import lava
from harness.run.runner import HUGEPAGES_2M
from harness.suites import registry as suites
from harness.vm import cpio, disks, image


def build(
    kernel_spec: str | None,
    out: Path,
    filters: tuple[str, ...] = (),
    url_base: str = "",
    memory_mib: int = 1024,
    cpus: int = 2,
    progress: Progress = lambda s: None,
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    image.require_qemu()
    selected = suites.select(suites.programs(["cow"]), list(filters))
    k = resolve_kernel(kernel_spec, progress)
    programs = []
    for s in selected:
        everything = list(s.ids) == suites.list_ids(s.program)
        programs.append(
            lava.Program(s.program.name, f"/harness/{s.program.guest_path}", () if everything else s.ids)
        )
    agent = lava.autorun_script(programs)
    (out / "agent.sh").write_text(agent)
    opts = image.GuestOptions(
        nonce=secrets.token_hex(8), share_usr=False, net=False, disk=True, hugepages=HUGEPAGES_2M
    )
    entries, _ = image.entries_for(k, image.Payload(suites.payload_files(selected)), opts)
    entries = [
        cpio.Entry.file("harness/agent.sh", agent.encode(), 0o755) if e.path == "harness/agent.sh" else e
        for e in entries
    ]
    (out / "initramfs.cpio.gz").write_bytes(gzip.compress(cpio.archive(entries), 6))
    shutil.copyfile(k.bzimage, out / "bzImage")
    ext4, swap = disks.make(out)
    for img in (ext4, swap):  # sparse and mostly zeros: tiny once compressed
        with open(img, "rb") as src, gzip.open(out / f"{img.name}.gz", "wb", 6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        img.unlink()

    def url(name: str) -> str:
        return f"{url_base.rstrip('/')}/{name}" if url_base else (out / name).resolve().as_uri()

    n_cases = sum(len(s.ids) for s in selected)
    job = lava.Job(
        name=f"harness cow on {k.release} ({n_cases} cases)",
        kernel_url=url("bzImage"),
        initrd_url=url("initramfs.cpio.gz"),
        scratch_url=url("scratch-ext4.img.gz"),
        swap_url=url("scratch-swap.img.gz"),
    )
    (out / "job.yaml").write_text(lava.dump(lava.job_definition(job)))
    (out / "device.yaml").write_text(lava.dump(lava.device_dictionary(memory_mib, cpus)))
    progress(f"LAVA job for {k.release}: {n_cases} cases in {len(programs)} programs -> {out / 'job.yaml'}")
    return out / "job.yaml"
