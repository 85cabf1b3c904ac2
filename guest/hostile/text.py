#!/usr/bin/env python3
"""Text meant to break the host's writers and whoever reads them: bytes that are not UTF-8,
terminal escapes (ESC, BEL, OSC title, the one-byte C1 CSI U+009B, backspace, DEL) and backtick
runs that would close a Markdown fence in a CI summary, in reasons and in output."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import main  # noqa: E402

IDS = ["hostile.bad-utf8", "hostile.escapes", "hostile.fence"]
ESCAPES = b"\x1b]0;pwned\x07\x1b[2J\x1b[31mred\xc2\x9b2J\x08\x7f\x1bc"
FENCE = b"\n```\n## injected\n````` "


def body(out):
    out.write(b"KTAP version 1\n1..3\n")
    out.write(b"# not UTF-8: \xff\xfe\xc3\x28 \xed\xa0\x80 end\n")
    out.write(b"ok 1 hostile.bad-utf8 # SKIP bytes \xff\xfe\xc3\x28 here\n")
    out.write(b"# " + ESCAPES + b"\n")
    out.write(b"not ok 2 hostile.escapes " + ESCAPES + b"\n")
    out.write(b"# ```\n```\n# " + FENCE + b"\n")
    out.write(b"ok 3 hostile.fence # SKIP ``` fence ```` " + FENCE.replace(b"\n", b" ") + b"\n")


sys.exit(main(IDS, body))
