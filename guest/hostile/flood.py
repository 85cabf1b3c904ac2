#!/usr/bin/env python3
"""64 MiB of diagnostics before the result (a WARN storm in a test's own output): the harness
keeps the head and the tail of it, says how much it dropped, and still finds the result."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import main  # noqa: E402

SIZE_MIB = int(os.environ.get("HOSTILE_FLOOD_MIB", "64"))
PAD = b"x" * 4000


def body(out):
    out.write(b"KTAP version 1\n1..1\n")
    n = SIZE_MIB * (1 << 20) // (len(PAD) + 20)
    for i in range(n):
        out.write(b"# flood %08d %s\n" % (i, PAD))
    out.write(b"ok 1 hostile.flood-64m\n")


sys.exit(main(["hostile.flood-64m"], body))
