"""The snapshot cache (harness/vm/snapshot.py) and the snapshot point's pure parts, without QEMU."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness import cli
from harness.vm import image, machine, qemu, snapshot
from harness.vm.qemu import QemuSpec, Share


@pytest.fixture(autouse=True)
def snapdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "snaps"
    monkeypatch.setenv("HARNESS_SNAPSHOT_DIR", str(d))
    return d


def _spec(run: Path, port: int | None) -> QemuSpec:
    return QemuSpec(
        qemu="qemu-system-x86_64",
        kernel=run / "bzImage",
        initrd=run / "initramfs.cpio",
        cmdline="console=ttyS0",
        accel="tcg",
        shares=(Share(Path("/usr"), "hostusr"),),
        ssh_port=port,
        monitor_socket=run / "qemu" / "monitor.sock",
        drives=(run / "scratch-ext4.img", run / "scratch-swap.img"),
    )


def _norm(s: QemuSpec) -> list[str]:
    return snapshot.normalized_argv(qemu.argv(s), s.kernel, s.initrd, s.monitor_socket, s.drives, s.ssh_port)


def test_argv_differs_between_runs_only_in_what_is_normalized(tmp_path: Path) -> None:
    a, b = _spec(tmp_path / "run-a", 2222), _spec(tmp_path / "run,b", 4444)
    assert qemu.argv(a) != qemu.argv(b)
    assert _norm(a) == _norm(b)
    assert not any("run-a" in x or "2222" in x for x in _norm(a))
    c = QemuSpec(**{**a.__dict__, "memory_mib": 2048})
    assert _norm(c) != _norm(a)


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    k, i, q = tmp_path / "bzImage", tmp_path / "initrd", tmp_path / "qemu"
    k.write_bytes(b"kernel")
    i.write_bytes(b"initrd")
    q.write_bytes(b"qemu")
    return k, i, q


def test_key_covers_kernel_initramfs_argv_qemu_and_accel(tmp_path: Path) -> None:
    k, i, q = _files(tmp_path)

    def key(**over: object) -> str:
        args: dict[str, object] = dict(
            kernel=k, initrd=i, argv=["-m", "1024M"], qemu_version="QEMU 7.2", qemu_bin=str(q), accel="tcg"
        )
        args.update(over)
        return snapshot.snapshot_key(**args)[0]  # type: ignore[arg-type]

    base = key()
    assert key() == base
    assert key(argv=["-m", "2048M"]) != base
    assert key(qemu_version="QEMU 8.2") != base
    assert key(accel="kvm") != base
    i.write_bytes(b"initrd with other tests")
    assert key() != base


def _entry(key: str, tmp_path: Path, vm: bytes = b"state") -> snapshot.Entry:
    src = tmp_path / f"disks-{key}"
    src.mkdir()
    disks = tuple(src / n for n in snapshot.DISKS)
    for d in disks:
        with open(d, "wb") as f:
            f.write(b"super")
            f.truncate(64 << 20)
    w = snapshot.Writer(key)
    fd = w.vmstate_fd()
    os.write(fd, vm)
    os.close(fd)
    w.add_disks(disks)
    return w.commit({"kernel": "6.12", "accel": "tcg", "point_uptime_s": 1.5})


def test_commit_lookup_and_sparse_disks(tmp_path: Path, snapdir: Path) -> None:
    e = _entry("k1", tmp_path)
    got, why = snapshot.lookup("k1")
    assert got is not None and why == "" and got.meta["point_uptime_s"] == 1.5
    ext4 = got.path / "scratch-ext4.img"
    assert ext4.stat().st_size == 64 << 20 and ext4.stat().st_blocks * 512 < 1 << 20  # still sparse
    assert ext4.read_bytes()[:5] == b"super"
    assert e.size_bytes() < 1 << 20
    assert snapshot.lookup("other") == (None, "")
    assert not [p for p in snapdir.iterdir() if p.name.startswith(".")]


def test_a_second_writer_of_the_same_key_keeps_the_first(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _entry("k1", tmp_path / "a")
    e2 = _entry("k1", tmp_path / "b", vm=b"other state")
    assert e2.vmstate.read_bytes() == b"state"


@pytest.mark.parametrize("damage", ["truncated", "meta", "other-key", "missing-disk"])
def test_damaged_entries_are_not_used(tmp_path: Path, damage: str) -> None:
    e = _entry("k1", tmp_path)
    if damage == "truncated":
        e.vmstate.write_bytes(b"st")
    elif damage == "meta":
        (e.path / "meta.json").write_text("{")
    elif damage == "other-key":
        (e.path / "meta.json").write_text(json.dumps({**e.meta, "key": "k2"}))
    else:
        (e.path / "scratch-swap.img").unlink()
    got, why = snapshot.lookup("k1")
    assert got is None and why.startswith("cached snapshot k1:")
    snapshot.discard("k1")
    assert snapshot.lookup("k1") == (None, "")


def test_prune_keeps_the_most_recently_used(tmp_path: Path) -> None:
    for n, k in enumerate(["old", "mid", "new"]):
        e = _entry(k, tmp_path)
        os.utime(e.path / "meta.json", (1000 + n, 1000 + n))
    assert snapshot.prune(max_entries=2) == ["old"]
    assert sorted(e.key for e in snapshot.entries()) == ["mid", "new"]
    assert "2 snapshot(s)" in snapshot.show()


def test_cache_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _entry("k1", tmp_path)
    assert cli.main(["cache", "show"]) == 0
    assert "k1" in capsys.readouterr().out
    assert cli.main(["cache", "prune", "--keep", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--keep -1" in err
    assert cli.main(["cache", "prune", "--keep", "0"]) == 0
    assert snapshot.entries() == []


def test_no_secret_in_the_initramfs_of_a_handshake_guest() -> None:
    opts = image.GuestOptions(
        nonce="s3cret",
        net=True,
        authorized_key="ssh-ed25519 AAAA harness",
        host_key=b"HOSTKEY",
        handshake=True,
    )
    env = image._env_file(opts).decode()
    assert "s3cret" not in env and "HARNESS_HANDSHAKE=1" in env
    line = machine.go_line(opts, 1700000000.0)
    go, nonce, clock, seed, ak, hk = line.split(" ")
    assert (go, nonce, clock, len(seed)) == ("harness-go", "s3cret", "1700000000", 64)
    assert ak != "-" and hk != "-"
    assert machine.go_line(image.GuestOptions(nonce="n", handshake=True), 1.0).endswith(" - -")


def test_restored_guest_checks() -> None:
    ok = machine.Checks(point_uptime_s=5.0, uptime_s=5.3, clock_s=1000, scratch="lost+found,")
    assert ok.problems(1001.0, True) == []
    assert "uptime went back" in machine.Checks(5.0, 4.0, 1000, "lost+found,").problems(1000, True)[0]
    assert "clock" in machine.Checks(5.0, 6.0, 10, "lost+found,").problems(1000, True)[0]
    assert (
        "not clean: lost+found,x," in machine.Checks(5.0, 6.0, 1000, "lost+found,x,").problems(1000, True)[0]
    )
    assert machine.Checks(5.0, 6.0, 1000, "").problems(1000, False) == []
