"""Pure resolution of kernel modules (with their dependencies) from modules.dep text."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SUFFIX = re.compile(r"\.ko(\.xz|\.zst|\.gz)?$")


def module_name(path: str) -> str:
    """kernel/fs/9p/9p.ko.xz → 9p; names compare with '-' and '_' as the same."""
    return _SUFFIX.sub("", path.rsplit("/", 1)[-1]).replace("-", "_")


@dataclass(frozen=True)
class Resolution:
    load_order: tuple[str, ...]  # module paths relative to lib/modules/<release>, deps first
    builtin: tuple[str, ...]  # wanted names that are built into the kernel
    missing: tuple[str, ...]  # wanted names that are neither modules nor built in


def resolve(wanted: list[str], modules_dep: str, modules_builtin: str) -> Resolution:
    deps: dict[str, list[str]] = {}
    path_of: dict[str, str] = {}
    for line in modules_dep.splitlines():
        if ":" not in line:
            continue
        path, _, rest = line.partition(":")
        path_of[module_name(path)] = path
        deps[path] = rest.split()
    builtin_names = {module_name(p) for p in modules_builtin.split()}

    order: list[str] = []
    seen: set[str] = set()

    def visit(path: str) -> None:
        if path in seen:
            return
        seen.add(path)
        for d in deps.get(path, []):
            visit(d)
        order.append(path)

    builtin: list[str] = []
    missing: list[str] = []
    for name in wanted:
        key = name.replace("-", "_")
        if key in path_of:
            visit(path_of[key])
        elif key in builtin_names:
            builtin.append(name)
        else:
            missing.append(name)
    return Resolution(tuple(order), tuple(builtin), tuple(missing))
