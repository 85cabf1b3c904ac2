"""QEMU runs confined: the seccomp sandbox where this QEMU has it, a minimal
environment, the monitor socket in a private directory, the initramfs (a host key inside) 0600."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
from pathlib import Path

import pytest

from harness.vm import machine, qemu
from tests.unit.test_qemu_argv import TCG


def test_sandbox_option_denies_what_qemu_never_needs() -> None:
    a = qemu.argv(dataclasses.replace(TCG, sandbox=True))
    value = a[a.index("-sandbox") + 1]
    assert value.split(",") == [
        "on",
        "obsolete=deny",
        "elevateprivileges=deny",
        "spawn=deny",
        "resourcecontrol=deny",
    ]
    assert "-sandbox" not in qemu.argv(TCG)


@pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="no QEMU")
def test_this_hosts_qemu_has_the_sandbox() -> None:
    assert qemu.sandbox_supported(
        shutil.which("qemu-system-x86_64") or ""
    )  # Debian's QEMU is built with libseccomp


def test_qemu_environment_carries_no_secret() -> None:
    env = qemu.environment(
        {
            "PATH": "/usr/bin",
            "CI_JOB_TOKEN": "s3cret",
            "GITHUB_TOKEN": "x",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "SSH_AUTH_SOCK": "/tmp/a",
        }
    )
    assert env == {"PATH": "/usr/bin", "LANG": "C.UTF-8"}
    assert qemu.environment({})["PATH"]


def test_monitor_socket_is_in_a_private_dir(tmp_path: Path) -> None:
    old = os.umask(0o002)  # a umask that would let the group in
    try:
        path = machine.monitor_socket_path(tmp_path)
    finally:
        os.umask(old)
    assert path.parent == tmp_path / "qemu"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    long = tmp_path / ("d" * 120)
    long.mkdir()
    fallback = machine.monitor_socket_path(long)
    assert stat.S_IMODE(fallback.parent.stat().st_mode) == 0o700
    fallback.parent.rmdir()
