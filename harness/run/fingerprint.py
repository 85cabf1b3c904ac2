"""What a run ran on and how: fingerprint.json, and the JUnit properties taken from it.

A Fingerprint is filled stage by stage (a new value each time: it is frozen): the request at
the start, the kernel once resolved, the machine once built and booted, the guest's facts once
it answers, timings and reboots at the end. `to_json` writes the same document `from_json`
reads back (a matrix reads its jobs' fingerprints); `junit_properties` is the one place that
says which of it goes into JUnit, for a run and for a matrix.
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness import __version__
from harness.model import Kernel


@dataclass(frozen=True)
class Fingerprint:
    harness: str
    host: Mapping[str, str]
    python: str
    request: Mapping[str, object]
    kernel: Mapping[str, str] | None = None  # spec, release, version, origin, bzimage
    machine: Mapping[str, object] | None = None  # modules, memory; then accel, qemu, boot_s
    snapshot: Mapping[str, object] | None = None  # fresh guests: restored or cold, the cache key
    guest: Mapping[str, str] | None = None  # the guest's own facts (run/guestfacts.py)
    boot_to_first_test_s: float | None = None
    guest_to_first_test_s: float | None = None  # from the first guest asked for to the first test
    isolated: tuple[Mapping[str, object], ...] | None = None  # fresh guests for --isolate
    reboots: tuple[Mapping[str, object], ...] | None = None
    total_s: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys this version does not know

    @classmethod
    def start(cls, request: Mapping[str, object]) -> Fingerprint:
        return cls(__version__, platform.uname()._asdict(), platform.python_version(), dict(request))

    def with_kernel(self, k: Kernel) -> Fingerprint:
        info = {"spec": k.spec, "release": k.release, "version": str(k.version), "origin": k.origin}
        return dataclasses.replace(self, kernel={**info, "bzimage": str(k.bzimage)})

    def with_machine(self, **info: object) -> Fingerprint:
        """More about the machine; what is already known stays (the first boot's accelerator)."""
        return dataclasses.replace(self, machine={**info, **(self.machine or {})})

    def with_(self, **changes: Any) -> Fingerprint:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "harness": self.harness,
            "host": dict(self.host),
            "python": self.python,
            "request": dict(self.request),
        }
        for f in dataclasses.fields(self)[4:]:
            value = getattr(self, f.name)
            if f.name == "extra":
                doc.update(value)
            elif value is not None:
                doc[f.name] = [dict(v) for v in value] if isinstance(value, tuple) else value
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Fingerprint:
        """A fingerprint.json as written (older runs may lack any part of it)."""
        known = {f.name for f in dataclasses.fields(cls)}

        def mapping(name: str) -> Any:
            v = doc.get(name)
            return v if isinstance(v, dict) else None

        def records(name: str) -> tuple[Mapping[str, object], ...] | None:
            v = doc.get(name)
            return tuple(x for x in v if isinstance(x, dict)) if isinstance(v, list) else None

        def number(name: str) -> float | None:
            v = doc.get(name)
            return float(v) if isinstance(v, int | float) else None

        return cls(
            harness=str(doc.get("harness", "")),
            host=mapping("host") or {},
            python=str(doc.get("python", "")),
            request=mapping("request") or {},
            kernel=mapping("kernel"),
            machine=mapping("machine"),
            snapshot=mapping("snapshot"),
            guest=mapping("guest"),
            boot_to_first_test_s=number("boot_to_first_test_s"),
            guest_to_first_test_s=number("guest_to_first_test_s"),
            isolated=records("isolated"),
            reboots=records("reboots"),
            total_s=number("total_s"),
            extra={k: v for k, v in doc.items() if k not in known},
        )

    def junit_properties(self, spec: str | None = None) -> dict[str, str]:
        """The testsuite properties of this run's JUnit: the harness, the kernel (its spec, or
        `spec` where a matrix names the job its own way) and, once booted, accelerator and QEMU."""
        props = {"harness.version": __version__}
        props.update({f"kernel.{k}": str(v) for k, v in (self.kernel or {}).items() if v is not None})
        if spec is not None:
            props["kernel.spec"] = spec
        mach = self.machine or {}
        for key in ("accel", "qemu"):  # not there when the run stopped before the boot
            if mach.get(key) is not None:
                props[key] = str(mach[key])
        return props
