#!/usr/bin/env python3
"""A KTAP plan line that announces fifty million results: one 14-byte line must not make the
host allocate them. The harness must make this program's case an ERROR."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import main  # noqa: E402


def body(out):
    out.write(b"KTAP version 1\n1..50000000\nok 1 hostile.plan-bomb\n")


sys.exit(main(["hostile.plan-bomb"], body))
