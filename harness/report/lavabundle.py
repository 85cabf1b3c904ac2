"""`harness lava`: the artefacts and job definition of a LAVA job for one kernel, in a directory.

DIR/bzImage, DIR/initramfs.cpio.gz, DIR/scratch-ext4.img.gz, DIR/scratch-swap.img.gz and, when
probes or RDMA cases are selected, DIR/usr.squashfs (the userspace image; the artefacts),
DIR/job.yaml (URLs under --url-base, or file:// paths into DIR when there is none),
DIR/device.yaml (a QEMU x86-64 device for running the job locally with lava-run), DIR/agent.sh
(what the guest runs, for reading) and DIR/plan.json (what the job runs; the guest prints it back
for `harness lava collect`).
"""

from __future__ import annotations

import gzip
import json
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from harness import __version__
from harness.errors import InputError
from harness.kernels.kernel import resolve as resolve_kernel
from harness.paths import REPO_ROOT
from harness.report import lava
from harness.run.guestfacts import GUEST_FACTS
from harness.run.runner import HUGEPAGES_2M
from harness.suites import registry as suites
from harness.vm import cpio, disks, hugepages, image, userspace

Progress = Callable[[str], None]
PLAN_FORMAT = 1


def build(
    kernel_spec: str | None,
    out: Path,
    filters: tuple[str, ...] = (),
    url_base: str = "",
    memory_mib: int | None = None,
    cpus: int = 2,
    progress: Progress = lambda s: None,
    suite_names: tuple[str, ...] = (),
    pinner: str = "auto",
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    image.require_qemu()
    selected = suites.select(suites.programs(list(suite_names)), list(filters))
    kselftests = [s.program.name for s in selected if s.program.kind == "kselftest"]
    if kselftests:
        raise InputError(f"--suite: kselftests ({', '.join(kselftests)}) do not go into a LAVA job yet")
    memory = hugepages.plan((i for s in selected for i in s.ids), memory_mib)
    k = resolve_kernel(kernel_spec, progress)
    files = suites.payload_files(selected)
    files.update(suites.kernel_payload(k, selected, progress, pinner))
    files["run-test.sh"] = REPO_ROOT / "guest" / "run-test.sh"
    needs_usr = any(s.program.needs_usr or s.program.needs_rdma for s in selected)
    rdma = any(s.program.needs_rdma for s in selected)
    extra = lava.pci_ram_bar_options() if any(s.program.needs_pci_ram_bar for s in selected) else ()
    programs = []
    for s in selected:
        everything = list(s.ids) == suites.list_ids(s.program)
        argv = s.program.guest_argv([] if everything else list(s.ids))
        programs.append(lava.Program(s.program.name, tuple(argv), int(s.program.timeout_s)))
    us = None
    if needs_usr:
        us = userspace.ensure(progress)
        shutil.copyfile(us.image, out / userspace.IMAGE_NAME)
    plan = {
        "format": PLAN_FORMAT,
        "harness": __version__,
        "kernel": {"spec": k.spec, "release": k.release, "version": str(k.version), "origin": k.origin},
        "programs": [{"name": s.program.name, "ids": list(s.ids)} for s in selected],
        "memory_mib": memory.memory_mib,
        "hugepages_1g": memory.hugepages_1g,
        "pinner": pinner,
        "userspace": us.fingerprint() if us else {"kind": "none"},
    }
    plan_text = json.dumps(plan, separators=(",", ":"))
    (out / "plan.json").write_text(json.dumps(plan, indent=1) + "\n")
    agent = lava.autorun_script(programs, plan_text, GUEST_FACTS)
    (out / "agent.sh").write_text(agent)
    opts = image.GuestOptions(
        nonce=secrets.token_hex(8),
        share_usr=False,
        net=False,
        disk=True,
        hugepages=HUGEPAGES_2M,
        rdma=rdma,
        pinner=pinner,
        usr_image=needs_usr,
    )
    entries, _ = image.entries_for(k, image.Payload(files), opts)
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
    # Under TCG the whole default suite takes ~10 minutes locally: room for a slow worker.
    test_min = max(30, sum(p.timeout_s for p in programs) // 60 // 4)
    job = lava.Job(
        name=f"harness on {k.release} ({n_cases} cases)",
        kernel_url=url("bzImage"),
        initrd_url=url("initramfs.cpio.gz"),
        scratch_url=url("scratch-ext4.img.gz"),
        swap_url=url("scratch-swap.img.gz"),
        userspace_url=url("usr.squashfs") if us else "",
        append=" ".join(memory.kernel_args),
        memory_mib=memory.memory_mib,
        extra_options=extra,
        test_timeout_min=test_min,
        job_timeout_min=test_min + 15,
    )
    (out / "job.yaml").write_text(lava.dump(lava.job_definition(job)))
    (out / "device.yaml").write_text(
        lava.dump(lava.device_dictionary(memory.memory_mib, cpus, nic=rdma, extra_options=extra))
    )
    progress(f"LAVA job for {k.release}: {n_cases} cases in {len(programs)} programs -> {out / 'job.yaml'}")
    return out / "job.yaml"
