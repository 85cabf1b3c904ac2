#!/usr/bin/env python3
"""Output that is one byte repeated: the agent's gzip makes it about a thousandth of its size,
so a few hundred KiB on the console would become this much on the host. The harness
must stop decompressing at its ratio cap and say so; the result line is lost with the rest."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import main  # noqa: E402

MIB = 1 << 20
SIZE_MIB = int(os.environ.get("HOSTILE_BOMB_MIB", "96"))


def body(out):
    out.write(b"KTAP version 1\n1..1\n")
    block = b"0" * MIB
    for _ in range(SIZE_MIB):
        out.write(block)
    out.write(b"\nok 1 hostile.gzip-bomb\n")


sys.exit(main(["hostile.gzip-bomb"], body))
