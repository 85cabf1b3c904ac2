"""The guest of a run: booted, replaced, lost and rebooted within a budget, and read.

A GuestSession holds the one running guest and the transport to it. Where the guest comes
from is a function given to it (`fresh`): in a run, FreshGuests (restored from the snapshot
cache or booted cold); in a unit test, a fake. The session decides nothing about cases: the
run asks it for a guest, a console section, a replacement after a loss.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from harness.errors import GuestUnresponsive, MachineError, TransportError
from harness.model import Progress
from harness.vm.transport import Transport


class Guest(Protocol):
    """What a run needs of a running guest (vm.machine.Machine, or a fake in unit tests)."""

    @property
    def console(self) -> Transport: ...
    @property
    def accel(self) -> str: ...
    @property
    def accel_note(self) -> str: ...
    @property
    def boot_s(self) -> float: ...
    @property
    def restored(self) -> bool: ...
    @property
    def qemu_version(self) -> str: ...

    def alive(self) -> bool: ...
    def log_offset(self) -> int: ...
    def log_since(self, offset: int) -> str: ...
    def log_has(self, offset: int, needle: bytes) -> bool: ...
    def drain(self, seconds: float) -> None: ...
    def drain_in_background(self) -> None: ...
    def dump_backtraces(self) -> None: ...
    def kill(self) -> None: ...
    def shutdown(self) -> None: ...


Fresh = Callable[[bool], Guest]  # a fresh guest; the flag says an earlier one was lost or replaced
Connect = Callable[[Guest], Transport]  # the transport to a guest (default: its console)


class GuestSession:
    def __init__(
        self,
        fresh: Fresh,
        say: Progress,
        max_reboots: int,
        connect: Connect | None = None,
        section_wait_s: float = 5.0,
    ) -> None:
        self._fresh, self._connect, self.say = fresh, connect, say
        self.max_reboots = max_reboots
        self.section_wait_s = section_wait_s
        self._guest: Guest | None = None
        self._transport: Transport | None = None
        self.reboots: list[dict[str, object]] = []
        self.first: dict[str, object] = {}  # the first guest's accelerator, QEMU and boot time
        self.used = False  # a test program ran in the current guest

    @property
    def guest(self) -> Guest:
        if self._guest is None:
            raise MachineError("no guest is running")
        return self._guest

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            raise MachineError("no guest is running")
        return self._transport

    @property
    def running(self) -> bool:
        return self._guest is not None

    def boot(self) -> Guest:
        g = self._fresh(self._guest is not None)
        self._guest, self.used = g, False
        if not self.first:
            self.first = {
                "accel": g.accel,
                "accel_note": g.accel_note,
                "qemu": g.qemu_version,
                "boot_s": round(g.boot_s, 2),
            }
        self.say(
            f"guest ready under {g.accel.upper()} in {g.boot_s:.2f}s"
            + (" (restored from a snapshot)" if g.restored else "")
        )
        self._transport = g.console
        if self._connect is not None:
            self._transport = self._connect(g)
            g.drain_in_background()
        return g

    def replace(self) -> float:
        """A pristine guest in place of the used one (isolation); returns the seconds it took."""
        t1 = time.monotonic()
        self.guest.kill()
        self.boot()
        return round(time.monotonic() - t1, 2)

    def lose(self, err: TransportError) -> str:
        """The guest stopped answering or died: backtraces if it still runs, then kill it.
        Returns why, in words for the cases' reasons."""
        g = self.guest
        if isinstance(err, GuestUnresponsive) and g.alive():
            self.say("guest not responding: asking the kernel for task and CPU backtraces")
            try:
                g.dump_backtraces()
            except MachineError as e:
                self.say(f"  could not: {e}")
            why = "the guest stopped responding"
        else:
            g.drain(1.0)
            why = "the guest died (QEMU exited)"
        g.kill()
        return why

    def reboot(self, why: str) -> None:
        """A fresh guest after a lost one, within the run's reboot budget (MachineError past it)."""
        if len(self.reboots) >= self.max_reboots:
            raise MachineError(f"guest lost {len(self.reboots) + 1} times; last: {why}")
        self.guest.kill()
        t1 = time.monotonic()
        self.say(f"guest lost ({why}); starting a fresh one")
        g = self.boot()
        self.reboots.append({"why": why, "reboot_s": round(time.monotonic() - t1, 2), "restored": g.restored})

    def console_section(self, offset: int, program: str) -> str:
        """The console from `offset` up to the program's end marker. Over SSH the console is
        read by a background thread: give it a moment to catch up with the marker."""
        g = self.guest
        deadline = time.monotonic() + self.section_wait_s
        needle, pos = f"harness: end {program} ".encode(), offset
        while True:
            size = g.log_offset()
            if g.log_has(pos, needle) or time.monotonic() > deadline:
                return g.log_since(offset)
            pos = max(offset, size - len(needle))  # read only what is new on the next look
            time.sleep(0.1)

    def close(self, clean: bool) -> None:
        """Power the guest off after a clean run; otherwise (Ctrl-C, a lost guest) the agent may
        never read a poweroff: kill QEMU."""
        if self._guest is not None:
            self._guest.shutdown() if clean else self._guest.kill()
