"""image.build(kernel, payload) → GuestImage: the initramfs the guest boots from.

The initramfs holds busybox, guest/init, the console agent, the kernel modules the guest needs
(decompressed on the host: busybox insmod cannot read .ko.xz), and the test payload. Python
probes run on the host's own /usr, shared read-only over 9p (see README, "Guest userspace"), or
on the userspace image (harness/vm/userspace.py) with --userspace image and in LAVA jobs.
"""

from __future__ import annotations

import lzma
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from harness import reportio
from harness.errors import BuildError, ToolMissing
from harness.kernels import modules
from harness.model import Kernel
from harness.paths import REPO_ROOT
from harness.vm import cpio

GUEST_DIR = REPO_ROOT / "guest"
# What the guest may need from a modular (distro) kernel; built-ins and absent ones are skipped.
# Each module costs guest time (a Debian module load is ~0.3 s under TCG): load only what is used.
VIRTIO_MODULES = ["virtio_pci"]  # built in on Debian 6.12, a module on 6.1
USR_MODULES = ["9p", "9pnet_virtio"]
USR_IMAGE_MODULES = ["virtio_blk", "squashfs"]  # the userspace image (harness/vm/userspace.py)
NET_MODULES = ["virtio_net"]
# loop and dm_delay (with dm_mod): the slow block device of cow_dio (an O_DIRECT read in flight).
DISK_MODULES = ["virtio_blk", "ext4", "crc32c_generic", "crc32c_intel", "loop", "dm_delay"]
# Soft-RoCE for the RDMA registration cases (cow_rdma), on eth0; its deps come from modules.dep.
# rxe asks the crypto API for "crc32" (ICRC; a module on Debian 6.1 and 6.12, none on 7.3); ib_uverbs gives userspace its
# /dev/infiniband/uverbsN (no longer a dependency of rdma_rxe in 7.x).
RDMA_MODULES = ["crc32_generic", "crc32_pclmul", "ib_uverbs", "rdma_rxe"]
_DIRS = [
    "bin",
    "sbin",
    "dev",
    "proc",
    "sys",
    "tmp",
    "run",
    "usr",
    "root",
    "root/.ssh",
    "mnt",
    "var",
    "etc",
    "etc/harness",
    "etc/dropbear",
    "lib",
    "harness",
]


@dataclass(frozen=True)
class Payload:
    """Files to place under /harness in the guest: {guest relative path: host path}."""

    files: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class GuestOptions:
    nonce: str
    share_usr: bool = True
    net: bool = False
    disk: bool = False  # virtio disks attached: vda ext4 scratch, vdb swap
    hugepages: int = 0  # 2 MiB hugetlb pages to reserve at boot
    rdma: bool = False  # a NIC, rdma_rxe and an rxe link on eth0 (needs share_usr: iproute2's rdma)
    pci_ram_bar: bool = False  # an ivshmem-plain PCI device (a RAM BAR no driver claims) in the machine
    pinner: str = "auto"  # COW_PINNER for cow_gup: auto | gup_test | module
    authorized_key: str = ""  # OpenSSH public key line for root, with net
    host_key: bytes = b""  # dropbear-format host key, with net
    # The guest stops at its snapshot point and takes the nonce and the SSH keys from the host's
    # "harness-go" line (guest/init), so the initramfs holds no per-run secret and a snapshot of
    # the booted guest can be cached and restored by later runs (harness/vm/snapshot.py).
    handshake: bool = False
    # /usr from the userspace image (harness/vm/userspace.py) on a read-only virtio disk after the
    # scratch disks, instead of the host's over 9p
    usr_image: bool = False


@dataclass(frozen=True)
class GuestImage:
    initramfs: Path
    modules_loaded: tuple[str, ...]
    modules_missing: tuple[str, ...]
    options: GuestOptions


def _busybox() -> Path:
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if Path(p).is_file():
            return Path(p)
    raise ToolMissing("busybox not found: apt-get install busybox-static (ci/setup.sh)")


def _applets(busybox: Path) -> list[str]:
    out = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True)
    return [a for a in out.stdout.split() if a and a != "busybox"]


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return lzma.decompress(data) if path.suffix == ".xz" else data


def module_entries(kernel: Kernel, wanted: list[str]) -> tuple[list[cpio.Entry], modules.Resolution]:
    if kernel.modules_dir is None:
        if kernel.config and kernel.config.get("CONFIG_MODULES") != "y":
            # Built without module support (kernels/lean.config): what it has is built in.
            return [], modules.Resolution((), tuple(wanted), ())
        return [], modules.Resolution((), (), tuple(wanted))
    mdir = kernel.modules_dir
    builtin = mdir / "modules.builtin"
    res = modules.resolve(
        wanted, (mdir / "modules.dep").read_text(), builtin.read_text() if builtin.is_file() else ""
    )
    entries = [cpio.Entry.dir("lib/modules")]
    names = []
    for rel in res.load_order:
        name = Path(rel).name.removesuffix(".xz")
        names.append(name)
        entries.append(cpio.Entry.file(f"lib/modules/{name}", _module_bytes(mdir / rel)))
    entries.append(cpio.Entry.file("etc/harness/modules", ("\n".join(names) + "\n").encode()))
    return entries, res


def _env_file(opts: GuestOptions) -> bytes:
    env = {
        "HARNESS_NONCE": "" if opts.handshake else opts.nonce,
        "HARNESS_HANDSHAKE": str(int(opts.handshake)),
        "HARNESS_USR": str(int(opts.share_usr)),
        "HARNESS_USR_IMAGE": str(int(opts.usr_image)),
        "HARNESS_USR_DEV": "/dev/vdc" if opts.disk else "/dev/vda",
        "HARNESS_NET": str(int(opts.net)),
        "HARNESS_DISK": str(int(opts.disk)),
        "HARNESS_HUGEPAGES": str(opts.hugepages),
        "HARNESS_RDMA": str(int(opts.rdma)),
        "HARNESS_PINNER": opts.pinner,
    }
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()).encode()


def entries_for(
    kernel: Kernel, payload: Payload, opts: GuestOptions
) -> tuple[list[cpio.Entry], modules.Resolution]:
    bb = _busybox()
    ents = [cpio.Entry.dir(d) for d in _DIRS]
    ents.append(cpio.Entry.file("bin/busybox", bb.read_bytes(), 0o755))
    ents += [cpio.Entry.symlink(f"bin/{a}", "busybox") for a in _applets(bb)]
    # Debian 12 is usr-merged: the dynamic loader and libraries live under the shared /usr.
    ents += [
        cpio.Entry.symlink("lib64", "usr/lib64"),
        cpio.Entry.symlink("lib/x86_64-linux-gnu", "../usr/lib/x86_64-linux-gnu"),
    ]
    ents.append(cpio.Entry.file("init", (GUEST_DIR / "init").read_bytes(), 0o755))
    ents.append(cpio.Entry.file("harness/agent.sh", (GUEST_DIR / "agent.sh").read_bytes(), 0o755))
    ents.append(cpio.Entry.file("etc/harness/env", _env_file(opts)))
    ents.append(cpio.Entry.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"))
    ents.append(cpio.Entry.file("etc/group", b"root:x:0:\n"))
    if opts.net and not opts.handshake:
        ents.append(cpio.Entry.file("root/.ssh/authorized_keys", opts.authorized_key.encode(), 0o600))
        ents.append(cpio.Entry.file("etc/dropbear/host_key", opts.host_key, 0o600))
    wanted = (
        (USR_MODULES if opts.share_usr else [])
        + (USR_IMAGE_MODULES if opts.usr_image else [])
        + (NET_MODULES if opts.net or opts.rdma else [])
        + (DISK_MODULES if opts.disk else [])
        + (RDMA_MODULES if opts.rdma else [])
    )
    if wanted:
        wanted = VIRTIO_MODULES + wanted
    mod_ents, res = module_entries(kernel, wanted)
    ents += mod_ents
    made = {"harness"}
    for rel, host in sorted(payload.files.items()):
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "harness/" + "/".join(parts[:i])
            if d not in made:
                made.add(d)
                ents.append(cpio.Entry.dir(d))
        try:
            data = host.read_bytes()
        except OSError as e:
            raise BuildError(f"payload file {host}: {e.strerror}") from None
        ents.append(cpio.Entry.file(f"harness/{rel}", data, 0o755 if host.stat().st_mode & 0o111 else 0o644))
    return ents, res


def build(kernel: Kernel, payload: Payload, opts: GuestOptions, out: Path) -> GuestImage:
    """Write the initramfs for this run to `out` (a file in the run dir)."""
    ents, res = entries_for(kernel, payload, opts)
    # 0600: with SSH it holds the guest's host private key.
    reportio.write_bytes(out, cpio.archive(ents), mode=0o600)
    return GuestImage(out, res.load_order, res.missing, opts)


def require_qemu() -> str:
    q = shutil.which("qemu-system-x86_64")
    if not q:
        raise ToolMissing("qemu-system-x86_64 not found: run ci/setup.sh (apt-get install qemu-system-x86)")
    return q
