"""QEMU as data: a frozen spec and the argv built from it (pure), plus version and KVM probes."""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# The guest is untrusted and QEMU is its way out: QEMU's seccomp filter denies what it never needs
# here. obsolete: old syscalls; elevateprivileges: set*uid/gid; spawn: fork/exec (nothing in
# our argv runs a helper: user-mode net, 9p in the local model); resourcecontrol: affinity and
# scheduler changes. QEMU 2.11+ built with libseccomp (Debian's is).
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
# QEMU's environment: what it needs and nothing of the harness's (a CI job's token included).
_ENV_PASSED = ("PATH", "TMPDIR", "LANG", "LC_ALL")
# The RAM behind the ivshmem-plain BAR (QemuSpec.pci_ram_bar): a power of two, as ivshmem needs.
PCI_RAM_BAR_SIZE = "1M"


@dataclass(frozen=True)
class Share:
    host_path: Path
    tag: str  # mount_tag seen by the guest; always exported read-only


@dataclass(frozen=True)
class QemuSpec:
    qemu: str
    kernel: Path
    initrd: Path
    cmdline: str
    accel: str  # "kvm" | "tcg"
    memory_mib: int = 1024
    cpus: int = 2
    shares: tuple[Share, ...] = ()
    ssh_port: int | None = None  # host 127.0.0.1 port forwarded to guest :22
    nic: bool = False  # a NIC without the SSH forward (the rxe RDMA device sits on it)
    monitor_socket: Path | None = None  # HMP on a unix socket (sysrq, NMI, quit)
    drives: tuple[Path, ...] = field(default=())  # raw images as virtio-blk disks, in order
    ro_drives: tuple[Path, ...] = field(default=())  # read-only ones after them (the userspace image)
    sandbox: bool = False  # -sandbox SANDBOX (machine: where this QEMU has it, sandbox_supported)
    # A VM generation ID device: QEMU gives it a new GUID on every start, a restored snapshot
    # included, and the kernel (CONFIG_VMGENID, 5.18+) reseeds its RNG when it changes, so
    # guests restored from one snapshot do not share their random numbers.
    vmgenid: bool = False
    # A PCI device whose memory BAR is plain RAM and that no driver claims (ivshmem-plain on a
    # 1 MiB RAM backend): the pfnmap_pci probe mmaps that BAR through sysfs (a VM_PFNMAP mapping
    # with vm_ops->access = generic_access_phys).
    pci_ram_bar: bool = False


def _val(p: Path) -> str:
    """A path as a QEMU option value: a "," would start a new option unless doubled."""
    return str(p).replace(",", ",,")


def argv(spec: QemuSpec) -> list[str]:
    """The exact QEMU command line for `spec`. No shell is ever involved."""
    a = [
        spec.qemu,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-machine",
        "pc",
        "-m",
        f"{spec.memory_mib}M",
        "-smp",
        str(spec.cpus),
    ]
    if spec.sandbox:
        a += ["-sandbox", SANDBOX]
    if spec.accel == "kvm":
        a += ["-accel", "kvm", "-cpu", "host"]
    else:
        # Without ERMS/FSRM: TCG executes `rep movsb/stosb` an iteration (a byte) at a time, and
        # with them advertised the kernel (clear_page_erms, FSRM memcpy) and glibc
        # (memcpy/memset above 2 KiB) use exactly those. Without them they
        # use rep movsq/stosq and vector loops: a 1 GiB hugetlb COW case went from ~30 s to ~6 s
        # (6.12, 2026-12-04). COW and pinning semantics do not depend on either flag.
        # thread=single: under multi-threaded TCG a vCPU can run stale translated code while
        # the other one patches kernel text (jump labels, text_poke's int3 protocol), and the
        # guest dies of "Oops: int3" in __schedule: seen during boot (6.12) and after the perf
        # probes toggled perf's static keys (6.16.3, 7.3.4), 2 of ~25 runs on 2026-12-04.
        # Round-robin vCPUs see every code change at once; a whole 7.3 run took 59.8 s against
        # 57.0 s multi-threaded.
        a += ["-accel", "tcg,thread=single", "-cpu", "max,erms=off,fsrm=off"]
    a += ["-kernel", str(spec.kernel), "-initrd", str(spec.initrd), "-append", spec.cmdline]
    # signal=off: Ctrl-C belongs to the harness, which then shuts QEMU down itself.
    a += ["-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con"]
    if spec.monitor_socket is not None:
        a += ["-monitor", f"unix:{_val(spec.monitor_socket)},server=on,wait=off"]
    for i, s in enumerate(spec.shares):
        a += [
            "-fsdev",
            f"local,id=fs{i},path={_val(s.host_path)},security_model=none,readonly=on",
            "-device",
            f"virtio-9p-pci,fsdev=fs{i},mount_tag={s.tag}",
        ]
    if spec.ssh_port is not None:
        # restrict=on: the guest reaches nothing on the host or beyond; only the forward gets in.
        a += [
            "-netdev",
            f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{spec.ssh_port}-:22",
            "-device",
            "virtio-net-pci,netdev=n0",
        ]
    elif spec.nic:
        a += ["-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-pci,netdev=n0"]
    else:
        a += ["-nic", "none"]
    for i, d in enumerate(spec.drives):
        a += ["-drive", f"file={_val(d)},format=raw,if=virtio,cache=unsafe,id=d{i}"]
    for i, d in enumerate(spec.ro_drives):
        a += ["-drive", f"file={_val(d)},format=raw,if=virtio,readonly=on,id=r{i}"]
    a += ["-device", "virtio-rng-pci"]
    if spec.pci_ram_bar:
        a += [
            "-object",
            f"memory-backend-ram,id=pcibar,size={PCI_RAM_BAR_SIZE},share=on",
            "-device",
            "ivshmem-plain,memdev=pcibar,master=on",  # master: the guest can be saved (migrated)
        ]
    if spec.vmgenid:
        a += ["-device", "vmgenid,guid=auto"]
    return a


@functools.cache
def sandbox_supported(qemu: str) -> bool:
    """This QEMU has the seccomp sandbox (built with libseccomp): its -help lists -sandbox."""
    try:
        out = subprocess.run([qemu, "-help"], capture_output=True, text=True, timeout=30, env=environment())
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "-sandbox on" in out.stdout


def environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The minimal environment QEMU runs with (pure given `base`, default os.environ)."""
    src = os.environ if base is None else base
    env = {k: src[k] for k in _ENV_PASSED if k in src}
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def version(qemu: str) -> str:
    out = subprocess.run([qemu, "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def kvm_openable() -> bool:
    """/dev/kvm can be opened read-write. Necessary, not sufficient: nested KVM may still die."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True
