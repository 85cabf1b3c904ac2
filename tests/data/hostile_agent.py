"""A stand-in for guest/agent.sh that answers the first request with a hostile reply: `noise`
MiB of garbage before the frame, then a frame whose stdout is `what` (see test_console_bounds).
Run under pexpect, as QEMU's stdio would be."""

import base64
import gzip
import hashlib
import sys

noise_mib, what = int(sys.argv[1]), sys.argv[2]
req = sys.stdin.buffer.readline().split(b"/")[0]
out = sys.stdout.buffer
block = b"x" * 1023 + b"\n"
for _ in range(noise_mib * 1024):
    out.write(block)
if what == "bomb":
    payload = gzip.compress(bytes(300 << 20), 9)
elif what == "big":  # a frame over the reply limit: 40 MiB of incompressible-ish base64
    payload = gzip.compress(bytes(range(256)) * 16, 1) + bytes((i * 7919) % 251 for i in range(30 << 20))
else:
    payload = gzip.compress(b"KTAP version 1\n1..1\nok 1 a\n")
b64 = base64.encodebytes(payload)
lines = b64.split(b"\n")[:-1]
md5 = hashlib.md5(b"".join(x + b"\n" for x in lines)).hexdigest()
out.write(req + b":Z:\n")
for x in lines:
    out.write(req + b":O:" + x + b"\n")
if what == "big":
    out.write(req + b":T:\n")
out.write(req + b":E:0:" + md5.encode() + b"\n")
out.write(req + b":E:0:" + md5.encode() + b"\n")
out.flush()
sys.stdin.buffer.readline()  # stay until the host is done
