"""Which kernel a set of results ran on, and which kernel LINE that is. Pure.

A line is the upstream major.minor plus the Debian flavour: `6.1`, `6.12`, `7.3`, `6.12-cloud`,
`6.1-rt` (a -cloud or -rt kernel is configured differently, so it is a line of its own). Two
nights of a matrix may run different packages of one line (linux-image-6.1.0-56 last night,
6.1.0-57 tonight, upstream 6.1.192 -> 6.1.193); `compare` pairs them by line.

The identity comes, best first, from the run's fingerprint (`kernel.release`, uname -r, and
`kernel.version`, the upstream version read from the image banner), then from the label (the
spec: `debian:6.1.0-56`, `debian:7.3`, `debian:6.12.117+deb12-cloud`). Debian's ABI-numbered
releases say nothing about the upstream patch level (6.1.0-56 is 6.1.192), so without a
fingerprint such a kernel has a line but no upstream version. Results written before
fingerprints existed, or a bzImage path with none, just have less identity; nothing here raises.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# "6.12.117", "7.3.4", "6.1.192-2": the upstream version (a Debian revision after "-" dropped)
_UPSTREAM = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+~_].*)?")
# A Debian release or spec: "6.1.0-56-amd64", "6.12.117+deb12-cloud-amd64", "7.3", "6.1-rt"
_DEBIAN = re.compile(r"(\d+)\.(\d+)((?:\.\d+)*)(-\d+)?(\+deb\d+)?(?:-(cloud|rt))?(?:-amd64)?")

Triple = tuple[int, int, int]


@dataclass(frozen=True)
class KernelId:
    label: str  # the spec the run asked for, as results.jsonl and matrix.json name it
    release: str = ""  # uname -r ("6.1.0-57-amd64"), "" if unknown
    upstream: Triple | None = None  # 6.1.193, from the banner; None if unknown
    series: tuple[int, int] | None = None  # (major, minor); None if unknown
    flavour: str = ""  # "", "cloud", "rt"

    @property
    def line(self) -> str:
        """ "6.1", "6.12-cloud"; "" when the major.minor is unknown (never paired by line)."""
        if self.series is None:
            return ""
        return f"{self.series[0]}.{self.series[1]}" + (f"-{self.flavour}" if self.flavour else "")

    @property
    def package(self) -> str:
        """The Debian package's version part: "6.1.0-57", "7.3.4+deb13"; else the label."""
        if self.release:
            return self.release.removesuffix("-amd64")
        return self.label.removeprefix("debian:") or "(unnamed)"

    @property
    def upstream_text(self) -> str:
        return ".".join(map(str, self.upstream)) if self.upstream else ""

    def describe(self) -> str:
        """ "6.1.0-57 (6.1.193)"; the upstream version is left out where the package says it."""
        up = self.upstream_text
        if not up or re.match(re.escape(up) + r"(?!\d)", self.package):
            return self.package
        return f"{self.package} ({up})"

    def sort_key(self) -> tuple[int, int, int, int, str, str]:
        """Upstream version order, numerically (6.1 < 6.12 < 7.0); unknown kernels last."""
        if self.series is None:
            return (1, 0, 0, 0, self.flavour, self.label)
        patch = self.upstream[2] if self.upstream else -1
        abi = re.match(r"\d+\.\d+\.\d+-(\d+)", self.package)  # 6.1.0-57: the ABI orders the packages
        return (
            0,
            self.series[0] * 1000 + self.series[1],
            patch,
            int(abi.group(1)) if abi else 0,
            self.flavour,
            self.label,
        )

    def same_kernel(self, other: KernelId) -> bool:
        """The same package as far as both sides know (release, else upstream, else label)."""
        if self.release and other.release:
            return self.release == other.release
        if self.upstream and other.upstream:
            return self.upstream == other.upstream and self.line == other.line
        return self.label == other.label


def _triple(text: str) -> Triple | None:
    m = _UPSTREAM.fullmatch(text.strip())
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None


def _from_debian_name(text: str) -> tuple[tuple[int, int] | None, Triple | None, str]:
    """(major.minor, upstream if the name holds it, flavour) of a Debian release or spec.

    "6.12.117+deb12" holds its upstream version; "6.1.0-56" (ABI number) and "7.3" do not."""
    m = _DEBIAN.fullmatch(text.strip())
    if m is None:
        return None, None, ""
    series = (int(m.group(1)), int(m.group(2)))
    patch = m.group(3)
    upstream = None
    if patch and patch.count(".") == 1 and not m.group(4):
        upstream = (series[0], series[1], int(patch[1:]))
    return series, upstream, m.group(6) or ""


def identify(label: str, fingerprint: Mapping[str, Any] | None = None) -> KernelId:
    """The identity of the kernel `label` ran, from its fingerprint if any (see the module doc)."""
    k = (fingerprint or {}).get("kernel")
    k = k if isinstance(k, Mapping) else {}
    release = str(k.get("release") or "")
    version = _triple(str(k.get("version") or ""))
    spec = label.removeprefix("debian:") if label.startswith("debian:") else ""
    r_series, r_up, r_flavour = _from_debian_name(release) if release else (None, None, "")
    s_series, s_up, s_flavour = _from_debian_name(spec) if spec else (None, None, "")
    upstream = version or r_up or s_up
    series = (upstream[0], upstream[1]) if upstream else (r_series or s_series)
    return KernelId(label, release, upstream, series, r_flavour or s_flavour)


def in_version_order(ids: Sequence[KernelId]) -> list[KernelId]:
    """Oldest upstream first; the sort is stable, so unknown kernels keep their run order."""
    return sorted(ids, key=KernelId.sort_key)


@dataclass(frozen=True)
class Pairing:
    """How a kernel of the old results was matched with one of the new."""

    old: KernelId
    new: KernelId
    how: str  # "same" (one label on both sides), "line" (same line, other package), "single"

    @property
    def moved(self) -> bool:
        """The package changed between the two sides (or the label did)."""
        return self.old.label != self.new.label or not self.old.same_kernel(self.new)

    @property
    def same_line(self) -> bool:
        return bool(self.old.line) and self.old.line == self.new.line

    def text(self, arrow: str = "->") -> str:
        """ "6.1 line: 6.1.0-56 (6.1.192) -> 6.1.0-57 (6.1.193)", or for kernels of two lines
        (only two single-kernel runs pair those) "debian:6.1.0-56 -> debian:6.12"."""
        if self.same_line:
            return f"{self.old.line} line: {self.old.describe()} {arrow} {self.new.describe()}"
        return f"{self.old.label or '?'} {arrow} {self.new.label or '?'}"


def pair(old: Sequence[KernelId], new: Sequence[KernelId]) -> list[Pairing]:
    """Match the old side's kernels with the new side's.

    One kernel on each side: matched whatever they are (a nightly single run, or "what does
    6.12 do differently from 6.1?"). Otherwise the same label on both sides first, then what is
    left by line: within a line, newest with newest. A kernel left over has no partner: its
    cases are new (or removed)."""
    if len(old) == 1 and len(new) == 1:
        return [Pairing(old[0], new[0], "single")]
    new_labels = {k.label for k in new}
    out = [
        Pairing(o, next(n for n in new if n.label == o.label), "same") for o in old if o.label in new_labels
    ]
    taken = {p.old.label for p in out}
    old_left = [k for k in old if k.label not in taken]
    new_left = [k for k in new if k.label not in taken]
    for line in dict.fromkeys(k.line for k in old_left if k.line):
        olds = in_version_order([k for k in old_left if k.line == line])[::-1]
        news = in_version_order([k for k in new_left if k.line == line])[::-1]
        out += [Pairing(o, n, "line") for o, n in zip(olds, news, strict=False)]
    return out
