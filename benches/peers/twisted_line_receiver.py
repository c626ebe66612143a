"""Twisted's LineReceiver on CPython, measured on the bytes that
benches/line_receiver.rs measures twined's LineParser on. Not part of CI.

    pip install twisted
    python3 benches/peers/twisted_line_receiver.py < lines.bin

Reads the input from stdin, feeds it to a LineReceiver (delimiter b"\\r\\n")
in 64 KiB chunks, as a transport would, through dataReceived, and prints
`lines=<n> lines_per_sec=<best of 5>`. Exits 2 when Twisted is missing.
"""
import sys
import time

try:
    from twisted.protocols.basic import LineReceiver
except ImportError:
    print("twisted is not installed (pip install twisted)", file=sys.stderr)
    sys.exit(2)

CHUNK = 64 * 1024


class Counter(LineReceiver):
    MAX_LENGTH = 16384

    def __init__(self):
        self.count = 0

    def lineReceived(self, line):
        self.count += 1


def run(data):
    proto = Counter()
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    t = time.perf_counter()
    for chunk in chunks:
        proto.dataReceived(chunk)
    return proto.count, time.perf_counter() - t


data = sys.stdin.buffer.read()
best = None
for _ in range(5):
    count, elapsed = run(data)
    best = elapsed if best is None else min(best, elapsed)
print(f"twisted={__import__('twisted').__version__} lines={count} lines_per_sec={count / best:.0f}")
