"""harness.vm.machine pure parts: the kernel command line, the accelerator plan, the QEMU spec."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harness import errors
from harness.errors import InputError
from harness.model import Kernel, KernelVersion
from harness.vm import machine, qemu
from harness.vm.image import GuestImage, GuestOptions
from tests.helpers.paths import DATA

KERNEL = Kernel(
    spec="debian:6.12",
    bzimage=Path("/cache/vmlinuz"),
    release="6.12.117+deb12-amd64",
    version=KernelVersion(6, 12, 117),
    modules_dir=None,
)


def spec(
    tmp_path: Path, append: str = "", accel: str = "auto", share_usr: bool = False, net: bool = False
) -> machine.MachineSpec:
    img = GuestImage(tmp_path / "initramfs.cpio", (), (), GuestOptions("n0nce", share_usr, net))
    return machine.MachineSpec(kernel=KERNEL, image=img, run_dir=tmp_path, accel=accel, append=append)


# --- cmdline -------------------------------------------------------------------------------


def test_cmdline_base(tmp_path: Path) -> None:
    words = machine.cmdline().split()
    assert "console=ttyS0,115200" in words
    assert "rdinit=/init" in words
    # panic=-1 with QEMU's -no-reboot: a panic ends QEMU instead of hanging the run.
    assert "panic=-1" in words
    assert machine.cmdline() == machine.cmdline().strip()


def test_cmdline_append_goes_last(tmp_path: Path) -> None:
    line = machine.cmdline("transparent_hugepage=never loglevel=7")
    assert line.endswith(" transparent_hugepage=never loglevel=7")
    assert line.startswith(machine.cmdline() + " ")


# --- accel_plan ----------------------------------------------------------------------------


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "harness"


@pytest.mark.parametrize("accel", ["kvm", "tcg"])
def test_explicit_accel_is_obeyed(accel: str, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemu, "kvm_openable", lambda: False)  # not even consulted
    assert machine.accel_plan(accel) == ([accel], "")


@pytest.mark.parametrize("accel", ["bogus", "", "KVM", "hvf"])
def test_unknown_accel(accel: str, cache: Path) -> None:
    with pytest.raises(InputError, match="expected auto, kvm or tcg"):
        machine.accel_plan(accel)


def test_auto_without_dev_kvm(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemu, "kvm_openable", lambda: False)
    plan, note = machine.accel_plan("auto")
    assert plan == ["tcg"]
    assert "/dev/kvm" in note


def test_auto_with_kvm_tries_kvm_then_tcg(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemu, "kvm_openable", lambda: True)
    assert machine.accel_plan("auto") == (["kvm", "tcg"], "")


def test_auto_remembers_broken_kvm(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemu, "kvm_openable", lambda: True)
    machine._remember_kvm_broken("KVM internal error (nested virtualization?)")
    plan, note = machine.accel_plan("auto")
    assert plan == ["tcg"]
    assert "KVM internal error (nested virtualization?)" in note
    verdict = machine._kvm_verdict_file()
    assert verdict.parent == cache and str(verdict) in note  # says what to delete to retry
    verdict.unlink()
    assert machine.accel_plan("auto") == (["kvm", "tcg"], "")


def test_remember_is_best_effort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # cache dir cannot be created
    machine._remember_kvm_broken("why")  # must not raise


# --- qemu_spec -----------------------------------------------------------------------------


def test_qemu_spec_console_only(tmp_path: Path) -> None:
    q = machine.qemu_spec(spec(tmp_path), "tcg", "/usr/bin/qemu-system-x86_64")
    assert q.accel == "tcg" and q.qemu == "/usr/bin/qemu-system-x86_64"
    assert q.kernel == KERNEL.bzimage and q.initrd == tmp_path / "initramfs.cpio"
    assert q.shares == () and q.ssh_port is None
    assert q.monitor_socket == tmp_path / "qemu" / "monitor.sock"  # a 0700 dir: test_qemu_confined
    assert q.cmdline == machine.cmdline()


def test_qemu_spec_shares_usr_read_only_and_forwards_ssh(tmp_path: Path) -> None:
    q = machine.qemu_spec(spec(tmp_path, share_usr=True, net=True), "kvm", "qemu")
    assert q.shares == (qemu.Share(Path("/usr"), "hostusr"),)
    assert q.ssh_port is not None and 0 < q.ssh_port < 65536
    a = qemu.argv(q)
    assert any("readonly=on" in x for x in a if x.startswith("local,"))
    assert any(f"hostfwd=tcp:127.0.0.1:{q.ssh_port}-:22" in x for x in a)


def test_qemu_spec_has_the_pci_ram_bar_only_when_the_guest_options_ask(tmp_path: Path) -> None:
    import dataclasses

    assert machine.qemu_spec(spec(tmp_path), "tcg", "qemu").pci_ram_bar is False
    s = spec(tmp_path)
    img = dataclasses.replace(s.image, options=dataclasses.replace(s.image.options, pci_ram_bar=True))
    assert machine.qemu_spec(dataclasses.replace(s, image=img), "tcg", "qemu").pci_ram_bar is True


def test_monitor_socket_moves_out_of_a_run_dir_too_long_for_a_unix_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    sock = machine.monitor_socket_path(deep)
    assert sock.name == "monitor.sock" and sock.parent.is_dir()
    assert len(os.fsencode(sock)) <= 107 and not str(sock).startswith(str(deep))
    assert machine.monitor_socket_path(tmp_path) == tmp_path / "qemu" / "monitor.sock"


# ---- a boot panic that is TCG's, not the kernel's ---------------------------------------------

INT3_BOOT = DATA / "kmsg" / "real-6.12-tcg-boot-oops-int3.log"


def test_int3_boot_oops_is_recognised_and_other_panics_are_not() -> None:
    assert machine.tcg_text_poke_flake(INT3_BOOT.read_bytes())
    other = DATA / "kmsg" / "real-6.12-oops-then-panic.log"
    assert not machine.tcg_text_poke_flake(other.read_bytes())


def _fake_boot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scripts: list[str], accel: str) -> Any:
    from types import SimpleNamespace

    monkeypatch.setattr(machine, "require_qemu", lambda: "/bin/sh")
    monkeypatch.setattr(machine, "accel_plan", lambda a: ([accel], ""))
    monkeypatch.setattr(
        machine, "qemu_spec", lambda spec, acc, qemu_bin: SimpleNamespace(accel=acc, monitor_socket=None)
    )
    monkeypatch.setattr(qemu, "argv", lambda q: ["/bin/sh", "-c", scripts.pop(0)])
    spec = SimpleNamespace(
        run_dir=tmp_path,
        kernel=SimpleNamespace(release="6.12-test"),
        boot_timeout_s=20.0,
        accel=accel,
        kvm_probe_s=5.0,
        image=SimpleNamespace(options=SimpleNamespace(nonce="n0nce")),
    )
    return machine.boot(spec)  # type: ignore[arg-type]


def test_boot_retries_a_tcg_int3_panic_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scripts = [f"cat {INT3_BOOT}", "echo harness-ready:n0nce:; sleep 30"]
    m = _fake_boot(tmp_path, monkeypatch, scripts, "tcg")
    try:
        assert "tcg boot panic, retried once" in m.accel_note and not scripts
    finally:
        m.kill()
    console = (tmp_path / "console.log").read_text()
    assert "boot attempt 1" in console and "Oops: int3" in console and "boot attempt 2" in console


@pytest.mark.parametrize("case", ["twice", "real-panic"])
def test_boot_does_not_retry_other_panics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    other = DATA / "kmsg" / "real-6.12-oops-then-panic.log"
    first = INT3_BOOT if case != "real-panic" else other
    scripts = [f"cat {first}", f"cat {INT3_BOOT}", "echo harness-ready:n0nce:; sleep 30"]
    with pytest.raises(errors.BootPanic, match="kernel panicked during boot"):
        _fake_boot(tmp_path, monkeypatch, scripts, "tcg")
    assert len(scripts) == (1 if case == "twice" else 2)
