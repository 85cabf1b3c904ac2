"""harness.vm.qemu.argv: golden command lines, plus the security invariants every argv must keep."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.vm import hugepages, machine, qemu
from harness.vm.qemu import QemuSpec, Share
from tests.helpers.paths import DATA

GOLDEN = DATA / "golden"
REGEN = os.environ.get("HARNESS_REGEN_GOLDEN") == "1"

TCG = QemuSpec(
    qemu="/usr/bin/qemu-system-x86_64",
    kernel=Path("/cache/kernels/debian/linux-image-6.1.0-56-amd64/boot/vmlinuz-6.1.0-56-amd64"),
    initrd=Path("/runs/r1/initramfs.cpio"),
    cmdline="console=ttyS0,115200 rdinit=/init panic=-1 8250.nr_uarts=1 loglevel=4",
    accel="tcg",
)

KVM = QemuSpec(
    qemu="/usr/bin/qemu-system-x86_64",
    kernel=Path("/cache/kernels/debian/linux-image-6.12.117+deb12-amd64/boot/vmlinuz-6.12.117+deb12-amd64"),
    initrd=Path("/runs/with space/initramfs.cpio"),  # argv elements, so spaces need no quoting
    cmdline="console=ttyS0,115200 rdinit=/init panic=-1 8250.nr_uarts=1 loglevel=4 transparent_hugepage=always",
    accel="kvm",
    memory_mib=2048,
    cpus=4,
    shares=(Share(Path("/usr"), "hostusr"), Share(Path("/srv/payload"), "payload")),
    ssh_port=40022,
    monitor_socket=Path("/runs/r2/monitor.sock"),
    drives=(Path("/runs/r2/swap.img"), Path("/runs/r2/scratch.img")),
)

# A selection with *.hugetlb-1g cases: the guest size and kernel words come from hugepages.plan.
_HUGE = hugepages.plan(["cow.fork.child-keeps-data.hugetlb-1g", "cow.fork.child-keeps-data.base"], None)
TCG_HUGETLB_1G = QemuSpec(
    qemu="/usr/bin/qemu-system-x86_64",
    kernel=Path("/cache/kernels/debian/linux-image-6.12.117+deb12-amd64/boot/vmlinuz-6.12.117+deb12-amd64"),
    initrd=Path("/runs/r3/initramfs.cpio"),
    cmdline=machine.cmdline("", _HUGE.kernel_args),
    accel="tcg",
    memory_mib=_HUGE.memory_mib,
    monitor_socket=Path("/runs/r3/monitor.sock"),
    drives=(Path("/runs/r3/scratch.img"), Path("/runs/r3/swap.img")),
)

SPECS = {"tcg": TCG, "kvm_shares_ssh_drives": KVM, "tcg_hugetlb_1g": TCG_HUGETLB_1G}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_golden_argv(name: str) -> None:
    path = GOLDEN / f"qemu_argv_{name}.json"
    got = json.dumps(qemu.argv(SPECS[name]), indent=1) + "\n"
    if REGEN:
        path.write_text(got, encoding="utf-8")
    assert got == path.read_text(encoding="utf-8"), "run with HARNESS_REGEN_GOLDEN=1 if intended"


def option_values(a: list[str], opt: str) -> list[str]:
    return [a[i + 1] for i, x in enumerate(a[:-1]) if x == opt]


def split_opts(value: str) -> list[str]:
    """Split a QEMU option string the way QEMU does: "," separates, ",," is a literal comma."""
    parts, cur, i = [], "", 0
    while i < len(value):
        if value[i] == ",":
            if value[i + 1 : i + 2] == ",":
                cur += ","
                i += 2
                continue
            parts.append(cur)
            cur = ""
        else:
            cur += value[i]
        i += 1
    parts.append(cur)
    return parts


def kv(value: str) -> dict[str, str]:
    """'local,id=fs0,path=/usr,readonly=on' → {'': 'local', 'id': 'fs0', ...}; a key given
    twice is an error here (QEMU would silently take one of them)."""
    out: dict[str, str] = {}
    for i, part in enumerate(split_opts(value)):
        k, sep, v = part.partition("=")
        key, val = (k, v) if sep else ("" if i == 0 else part, part if i == 0 else "")
        assert key not in out, f"{key!r} given twice in {value!r}"
        out[key] = val
    return out


@pytest.mark.parametrize("spec", list(SPECS.values()), ids=list(SPECS))
def test_invariants(spec: QemuSpec) -> None:
    a = qemu.argv(spec)
    assert all(isinstance(x, str) for x in a)
    assert a[0] == spec.qemu
    assert "-nodefaults" in a and "-no-user-config" in a and "-no-reboot" in a
    assert option_values(a, "-kernel") == [str(spec.kernel)]
    assert option_values(a, "-initrd") == [str(spec.initrd)]
    assert option_values(a, "-append") == [spec.cmdline]  # one element, never split
    # Ctrl-C must reach the harness, not kill QEMU behind its back.
    assert any("signal=off" in c for c in option_values(a, "-chardev"))


def test_every_fsdev_is_readonly() -> None:
    a = qemu.argv(KVM)
    fsdevs = option_values(a, "-fsdev")
    assert len(fsdevs) == len(KVM.shares) == 2
    for v in fsdevs:
        assert kv(v)["readonly"] == "on", v
        assert kv(v)[""] == "local"
    tags = [kv(d)["mount_tag"] for d in option_values(a, "-device") if d.startswith("virtio-9p-pci")]
    assert tags == ["hostusr", "payload"]
    # Each device points at its own fsdev.
    ids = [kv(v)["id"] for v in fsdevs]
    assert [kv(d)["fsdev"] for d in option_values(a, "-device") if d.startswith("virtio-9p-pci")] == ids


def test_user_network_is_restricted_and_forward_binds_loopback() -> None:
    a = qemu.argv(KVM)
    (netdev,) = option_values(a, "-netdev")
    opts = kv(netdev)
    assert opts[""] == "user"
    assert opts["restrict"] == "on"
    fwds = [p for p in split_opts(netdev) if p.startswith("hostfwd=")]
    assert fwds == ["hostfwd=tcp:127.0.0.1:40022-:22"]
    assert "-nic" not in a


def test_no_network_without_ssh() -> None:
    a = qemu.argv(TCG)
    assert option_values(a, "-nic") == ["none"]
    assert "-netdev" not in a and "-fsdev" not in a and "-drive" not in a and "-monitor" not in a


def test_rdma_gets_a_restricted_nic_without_any_forward() -> None:
    import dataclasses

    a = qemu.argv(dataclasses.replace(TCG, nic=True))
    (netdev,) = option_values(a, "-netdev")
    assert split_opts(netdev) == ["user", "id=n0", "restrict=on"]
    assert "virtio-net-pci,netdev=n0" in option_values(a, "-device") and "-nic" not in a


def test_accel_and_cpu() -> None:
    assert option_values(qemu.argv(TCG), "-accel") == ["tcg,thread=single"]  # no MTTCG int3 flake
    # No ERMS/FSRM under TCG: byte-at-a-time rep movsb/stosb made 1 GiB cases ~5x slower.
    assert option_values(qemu.argv(TCG), "-cpu") == ["max,erms=off,fsrm=off"]
    assert option_values(qemu.argv(KVM), "-accel") == ["kvm"]
    assert option_values(qemu.argv(KVM), "-cpu") == ["host"]
    assert option_values(qemu.argv(KVM), "-m") == ["2048M"]
    assert option_values(qemu.argv(KVM), "-smp") == ["4"]


def test_hugetlb_1g_guest_size_and_boot_time_pool() -> None:
    a = qemu.argv(TCG_HUGETLB_1G)
    assert option_values(a, "-m") == ["5120M"]
    (line,) = option_values(a, "-append")
    assert line.split()[-3:] == ["hugepagesz=1G", "hugepages=2", "default_hugepagesz=2M"]


def test_drives_in_order_as_raw_virtio() -> None:
    drives = option_values(qemu.argv(KVM), "-drive")
    assert [kv(d)["file"] for d in drives] == [str(p) for p in KVM.drives]
    assert all(kv(d)["format"] == "raw" and kv(d)["if"] == "virtio" for d in drives)


def test_monitor_on_unix_socket_without_waiting() -> None:
    (mon,) = option_values(qemu.argv(KVM), "-monitor")
    assert mon.startswith(f"unix:{KVM.monitor_socket},")
    assert kv(mon)["server"] == "on" and kv(mon)["wait"] == "off"


def test_commas_in_paths_cannot_inject_options() -> None:
    # A run dir or share path with a comma once split the option ("Invalid parameter
    # 'b/monitor.sock'"), and could smuggle in options such as readonly=off.
    evil = Path("/runs/a,readonly=off,b")
    spec = QemuSpec(
        qemu="qemu",
        kernel=Path("/k"),
        initrd=Path("/i"),
        cmdline="",
        accel="tcg",
        shares=(Share(evil, "t"),),
        monitor_socket=evil / "monitor.sock",
        drives=(evil / "d.img",),
    )
    a = qemu.argv(spec)
    (fsdev,) = option_values(a, "-fsdev")
    assert kv(fsdev)["path"] == str(evil) and kv(fsdev)["readonly"] == "on"
    (drive,) = option_values(a, "-drive")
    assert kv(drive)["file"] == str(evil / "d.img")
    (mon,) = option_values(a, "-monitor")
    assert split_opts(mon)[0] == f"unix:{evil}/monitor.sock"


def test_pci_ram_bar_adds_an_ivshmem_device_on_a_ram_backend_only_when_asked() -> None:
    import dataclasses

    assert "-object" not in qemu.argv(TCG)
    assert not any("ivshmem" in d for d in option_values(qemu.argv(TCG), "-device"))
    a = qemu.argv(dataclasses.replace(TCG, pci_ram_bar=True))
    (backend,) = option_values(a, "-object")
    assert split_opts(backend) == [
        "memory-backend-ram",
        "id=pcibar",
        f"size={qemu.PCI_RAM_BAR_SIZE}",
        "share=on",
    ]
    assert "ivshmem-plain,memdev=pcibar,master=on" in option_values(a, "-device")


def test_only_the_pci_bar_probe_asks_for_the_device() -> None:
    from harness.suites import registry as suites

    wanting = {p.name for p in suites.probes() if p.needs_pci_ram_bar}
    assert wanting == {"pfnmap_pci"}
