"""What every hostile program shares: the --list contract, and raw bytes to stdout."""

import sys


def main(ids, body):
    if "--list" in sys.argv[1:]:
        print(" ".join(ids))
        return 0
    out = sys.stdout.buffer
    body(out)
    out.flush()
    return 0
