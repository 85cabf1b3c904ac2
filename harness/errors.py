"""The one exception tree. Errors are converted to exit codes only at the top (cli)."""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose. Exit code 2 (input/infrastructure)."""

    exit_code = 2


class InputError(HarnessError):
    """The user gave us something we cannot use (bad path, bad spec, bad option)."""


class ConfigError(InputError):
    """A configuration file (expectations YAML) is invalid; message carries file:line."""


class KernelError(InputError):
    """The kernel cannot be resolved, fetched or is not a bootable image."""


class ToolMissing(HarnessError):
    """A host tool (qemu, busybox, depmod, gcc...) is not installed."""


class BuildError(HarnessError):
    """Building the guest payload (C tests, initramfs) failed."""


class MachineError(HarnessError):
    """QEMU could not start, the guest never booted, or it died."""


class BootTimeout(MachineError):
    """The guest showed no sign of a working userspace within the boot timeout."""


class AccelUnusable(MachineError):
    """The requested accelerator starts but cannot run the guest (e.g. nested KVM)."""


class BootPanic(MachineError):
    """The kernel panicked before the guest was ready; `console` is what it printed."""

    def __init__(self, message: str, console: bytes = b"") -> None:
        super().__init__(message)
        self.console = console


class TransportError(MachineError):
    """A transport (console or SSH) lost the guest or got garbage it cannot frame."""


class CommandTimeout(TransportError):
    """A command in the guest did not finish within its timeout (and was killed there).

    `partial` holds what it printed before it was killed (a transport.CommandResult), when the
    transport could get it."""

    def __init__(self, message: str, partial: object | None = None) -> None:
        super().__init__(message)
        self.partial = partial


class GuestUnresponsive(TransportError):
    """The guest stopped answering altogether: a kernel hang, not a test hang."""


class ReportWriteError(HarnessError):
    """A report or result file could not be written (a full disk, a read-only or vanished run
    dir): exit 2, never a traceback, and the other reports are still attempted."""
