"""The SSH transport: paramiko to the guest's dropbear through QEMU's user-net port forward.

Everything paramiko-specific lives here; callers see only the Transport protocol and the
harness's own errors. The guest's dropbear runs from the host's /usr (shared over 9p) with a
host key the harness made for this run, so the host *knows* the key and rejects any other:
there is no trust-on-first-use anywhere.

Use:  keys = make_keys(run_dir)
      GuestOptions(net=True, authorized_key=keys.authorized_line, host_key=keys.host_key_bytes)
      m = machine.boot(...); ssh = connect(m, keys, timeout_s=60)
"""

from __future__ import annotations

import base64
import logging
import os
import select
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness import limits
from harness.errors import CommandTimeout, HarnessError, ToolMissing, TransportError
from harness.vm.qemu import QemuSpec
from harness.vm.transport import CommandResult, Transport, as_shell

HOST = "127.0.0.1"
USER = "root"
# Dropbear starts commands with its compiled-in PATH (/usr/bin:/bin) in root's home. The console
# agent runs them with init's PATH in /tmp; do the same so both channels behave alike.
_PRELUDE = "export PATH=/bin:/sbin:/usr/bin:/usr/sbin; cd /tmp || exit 125\n"
# Where each command's shell notes its pid, so a command that times out can be killed.
_PIDFILE = "/tmp/.ssh-cmd.{tag}.pid"
_RETRY_PAUSE_S = 0.5

# paramiko's transport thread logs every refused early connection attempt (with a traceback)
# at ERROR; with no handler configured anywhere, logging's last resort prints them to stderr.
# A NullHandler keeps them out of the terminal but still reaches handlers the application sets.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class SshKeys:
    client_key: Path  # OpenSSH private key file, mode 0600, in the run dir
    authorized_line: str  # "ssh-ed25519 AAAA... harness" for root's authorized_keys
    host_key: Path  # dropbear-format host key file for the guest
    host_key_bytes: bytes  # its contents (goes into the initramfs)
    host_public: str  # "ssh-ed25519 AAAA..." the guest must present


def _write_private(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _client_key(path: Path) -> str:
    key = Ed25519PrivateKey.generate()
    _write_private(
        path,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ),
    )
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return pub.decode() + " harness"


def _dropbear_key(path: Path) -> str:
    tool = shutil.which("dropbearkey")
    if tool is None:
        raise ToolMissing("dropbearkey not found: apt-get install dropbear-bin (ci/setup.sh)")
    path.unlink(missing_ok=True)  # dropbearkey refuses to overwrite
    made = subprocess.run([tool, "-t", "ed25519", "-f", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        raise ToolMissing(f"dropbearkey failed: {made.stderr.strip()}")
    shown = subprocess.run([tool, "-y", "-f", str(path)], capture_output=True, text=True)
    for line in shown.stdout.splitlines():
        if line.startswith("ssh-ed25519 "):
            return " ".join(line.split()[:2])
    raise ToolMissing(f"dropbearkey -y printed no ed25519 public key: {shown.stdout!r} {shown.stderr!r}")


def make_keys(run_dir: Path) -> SshKeys:
    """Fresh keys for one run: the client's (for root in the guest) and the guest's host key."""
    kdir = run_dir / "ssh"
    kdir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(kdir, 0o700)
    client, host = kdir / "client_ed25519", kdir / "host_ed25519.dropbear"
    authorized = _client_key(client)
    host_public = _dropbear_key(host)
    os.chmod(host, 0o600)  # the guest's private host key
    (kdir / "client_ed25519.pub").write_text(authorized + "\n")
    (kdir / "known_hosts.pub").write_text(host_public + "\n")
    return SshKeys(client, authorized, host, host.read_bytes(), host_public)


class Guest(Protocol):
    """What connect() needs from a machine.Machine (a Protocol, so tests can pass a stand-in)."""

    @property
    def qspec(self) -> QemuSpec: ...

    @property
    def console(self) -> Transport: ...

    def alive(self) -> bool: ...


def _host_key(public: str) -> paramiko.PKey:
    kind, b64 = public.split()[:2]
    return paramiko.PKey.from_type_string(kind, base64.b64decode(b64))


def _client_for(port: int, keys: SshKeys) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    # Only the key made for this run is accepted, under the name paramiko looks up for a
    # non-22 port; RejectPolicy turns any other key into an exception (never AutoAddPolicy).
    client.get_host_keys().add(f"[{HOST}]:{port}", "ssh-ed25519", _host_key(keys.host_public))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def _try_connect(port: int, keys: SshKeys, pkey: paramiko.PKey, attempt_s: float) -> paramiko.SSHClient:
    client = _client_for(port, keys)
    try:
        client.connect(
            HOST,
            port=port,
            username=USER,
            pkey=pkey,
            look_for_keys=False,
            allow_agent=False,
            timeout=attempt_s,
            banner_timeout=attempt_s,
            auth_timeout=attempt_s,
            channel_timeout=attempt_s,
        )
    except BaseException:
        client.close()
        raise
    return client


def open_client(
    port: int, keys: SshKeys, timeout_s: float, alive: Callable[[], bool] = lambda: True
) -> paramiko.SSHClient:
    """Connect, retrying while dropbear is not up yet. Raises TransportError, never paramiko's."""
    try:
        pkey = paramiko.Ed25519Key.from_private_key_file(str(keys.client_key))
    except (OSError, paramiko.SSHException) as e:
        raise TransportError(f"ssh: cannot load client key {keys.client_key}: {e}") from None
    deadline = time.monotonic() + timeout_s
    last = "no attempt made"
    while True:
        if not alive():
            raise TransportError(f"ssh: the guest died before dropbear answered (last: {last})")
        left = deadline - time.monotonic()
        if left <= 0:
            raise TransportError(
                f"ssh: dropbear on {HOST}:{port} did not answer within {timeout_s:.0f}s (last: {last})"
            )
        try:
            return _try_connect(port, keys, pkey, max(1.0, min(10.0, left)))
        except paramiko.BadHostKeyException as e:
            raise TransportError(
                f"ssh: {HOST}:{port} presented a host key that is not this run's "
                f"({e.key.get_name()} {e.key.get_base64()[:24]}...)"
            ) from None
        except paramiko.AuthenticationException as e:
            raise TransportError(f"ssh: dropbear refused root's key: {e}") from None
        except (paramiko.SSHException, EOFError, OSError) as e:
            # Before dropbear listens, QEMU's slirp accepts and then drops the connection:
            # paramiko sees a reset or a missing banner. Wait and retry.
            last = f"{type(e).__name__}: {e}"
        time.sleep(min(_RETRY_PAUSE_S, max(0.0, deadline - time.monotonic())))


def connect(machine: Guest, keys: SshKeys, timeout_s: float = 60.0) -> SshTransport:
    """An SshTransport to a machine booted with GuestOptions(net=True, keys...).

    If dropbear never answers, the error carries the guest's /tmp/dropbear.log, read over the
    console (the channel that needs nothing but the agent)."""
    port = machine.qspec.ssh_port
    if port is None:
        raise TransportError("ssh: the machine was booted without net (GuestOptions(net=True))")
    try:
        client = open_client(port, keys, timeout_s, machine.alive)
    except TransportError as e:
        raise TransportError(f"{e}{_guest_log(machine)}") from None
    return SshTransport(client, f"{HOST}:{port}")


def _guest_log(machine: Guest) -> str:
    if not machine.alive():
        return ""
    try:
        r = machine.console.run(
            'cat /tmp/dropbear.log; echo "(dropbear pids: $(pidof dropbear || echo none))"', 15.0
        )
    except (HarnessError, OSError) as e:  # a diagnostic must not hide the real error
        return f"\n(could not read /tmp/dropbear.log over the console: {e})"
    text = r.stdout.decode(errors="replace").strip()
    return "\nguest /tmp/dropbear.log:\n" + (text or "(empty)")


class SshTransport:
    """Runs each command on its own SSH channel: binary-safe stdout/stderr and a real exit status."""

    name = "ssh"

    def __init__(self, client: paramiko.SSHClient, where: str) -> None:
        self._client = client
        self._where = where
        self._seq = 0

    def _session(self) -> paramiko.Channel:
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise TransportError(f"ssh: connection to {self._where} is closed")
        try:
            return transport.open_session(timeout=30.0)
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise TransportError(f"ssh: cannot open a channel to {self._where}: {e}") from None

    def _exec(self, command: str, data: bytes, timeout_s: float, kill: bool = True) -> CommandResult:
        self._seq += 1
        pidfile = shlex.quote(_PIDFILE.format(tag=f"{os.getpid()}-{self._seq}"))
        # Like the console agent, run the command in its own `sh -c` under a shell that stays:
        # that shell notes its pid (for _kill), and turns a command killed by signal N into
        # exit status 128+N as the agent does (over SSH a killed login shell has no status).
        wrapped = f"echo $$ > {pidfile}; trap 'rm -f {pidfile}' EXIT\n{_PRELUDE}sh -c {shlex.quote(command)}"
        chan = self._session()
        deadline = time.monotonic() + timeout_s
        try:
            chan.settimeout(max(0.1, timeout_s))
            chan.exec_command(wrapped)
            if data:
                chan.sendall(data)
            chan.shutdown_write()  # stdin EOF, like the console agent's </dev/null
            out, err, note = _drain(chan, deadline)
            if not chan.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError()
            rc = chan.recv_exit_status()
        except TimeoutError:
            chan.close()
            if kill:
                self._kill(pidfile)
            raise CommandTimeout(f"ssh: no reply to {command[:60]!r} within {timeout_s:.0f}s") from None
        except (paramiko.SSHException, EOFError, OSError) as e:
            chan.close()
            raise TransportError(f"ssh: lost {self._where} while running {command[:60]!r}: {e}") from None
        chan.close()
        # paramiko reports -1 when the shell itself died of a signal (exit-signal, no status):
        # report 255 as OpenSSH's client does.
        return CommandResult(255 if rc < 0 else rc, out, err, note)

    def _kill(self, pidfile: str) -> None:
        """Kill a timed-out command and its descendants. Dropbear leaves them running when the
        channel closes, and they share the process group of dropbear's connection process (a
        group kill would end the connection), so walk the tree: stop a parent before listing
        its children so it cannot fork behind our back."""
        script = (
            f"k() {{ kill -STOP $1 2>/dev/null; for c in $(pgrep -P $1); do k $c; done; "
            f"kill -9 $1 2>/dev/null; }}; p=$(cat {pidfile} 2>/dev/null) && k $p; rm -f {pidfile}"
        )
        try:
            self._exec(script, b"", 15.0, kill=False)
        except TransportError:
            pass

    def run(self, command: str | Sequence[str], timeout_s: float = 60.0) -> CommandResult:
        return self._exec(as_shell(command), b"", timeout_s)

    def put(self, data: bytes, remote: str, mode: int = 0o644) -> None:
        # Dropbear has no SFTP server: stream the bytes to cat on the command's stdin.
        q = shlex.quote(remote)
        timeout_s = 60.0 + len(data) / (256 * 1024)
        r = self._exec(f"cat > {q} && chmod {mode:o} {q}", data, timeout_s)
        if r.rc != 0:
            raise TransportError(f"ssh: writing {remote} failed: {r.stderr.decode(errors='replace').strip()}")

    def close(self) -> None:
        self._client.close()


def _drain(chan: paramiko.Channel, deadline: float) -> tuple[bytes, bytes, str]:
    """All of stdout and stderr until EOF, each bounded as the console's are (head and tail,
    limits.py), and a note of what was dropped; socket.timeout at the deadline."""
    out = limits.HeadTail(
        limits.PROGRAM_STDOUT_HEAD_BYTES, limits.MAX_PROGRAM_STDOUT_BYTES - limits.PROGRAM_STDOUT_HEAD_BYTES
    )
    err = limits.HeadTail(limits.MAX_PROGRAM_STDERR_BYTES // 2, limits.MAX_PROGRAM_STDERR_BYTES // 2)
    fd = chan.fileno()  # a pipe paramiko signals when stdout or stderr has data (or EOF)
    while True:
        while chan.recv_ready():
            out.write(chan.recv(65536))
        while chan.recv_stderr_ready():
            err.write(chan.recv_stderr(65536))
        if chan.eof_received and not chan.recv_ready() and not chan.recv_stderr_ready():
            notes = [
                f"{h.dropped} of {h.total} bytes of {name} dropped from the middle"
                for name, h in (("stdout", out), ("stderr", err))
                if h.dropped
            ]
            return out.value(), err.value(), "; ".join(notes)
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError()
        select.select([fd], [], [], min(left, 1.0))
