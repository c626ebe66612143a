"""Twisted on CPython, measured on the same jobs as twined's benches, so that
the README can quote ratios from one session. Not part of CI.

    pip install twisted
    python3 benches/peers/twisted_peer.py

Prints ns per operation for: a Deferred with three callbacks fired; a
callLater(0) scheduled and fired on the real reactor (100,000 of them);
`await succeed(x)` inside a coroutine run by ensureDeferred; and a
DeferredList over 10,000 fired Deferreds; and, with an argument (one reactor
run per process), deferToThread round trips: 1,000 one after another or 1,000
in flight on the reactor's default pool of 10.
"""
import time

from twisted.internet import defer, reactor, threads


def per_op(fn, n):
    best = None
    for _ in range(3):
        t = time.perf_counter()
        fn(n)
        el = (time.perf_counter() - t) / n * 1e9
        best = el if best is None else min(best, el)
    return best


def three_callbacks(n):
    for _ in range(n):
        d = defer.Deferred()
        d.addCallback(lambda x: x + 1)
        d.addCallback(lambda x: x * 2)
        d.addCallback(lambda x: x + 3)
        d.callback(1)


def await_succeed(n):
    async def main():
        s = 0
        for i in range(n):
            s += await defer.succeed(i)
        return s

    defer.ensureDeferred(main())


def deferred_list(n):
    defer.DeferredList([defer.succeed(i) for i in range(n)])


def call_later(n):
    left = [n]

    def fire():
        left[0] -= 1
        if left[0] == 0:
            reactor.stop()

    for _ in range(n):
        reactor.callLater(0, fire)
    t = time.perf_counter()
    reactor.run()
    return (time.perf_counter() - t) / n * 1e9


def defer_to_thread(n, in_flight):
    """ns per deferToThread call, measured inside one reactor run."""
    out = {}

    def one_at_a_time(left):
        if left == 0:
            reactor.stop()
            return
        threads.deferToThread(lambda: left + 1).addCallback(lambda _: one_at_a_time(left - 1))

    def start():
        out["t"] = time.perf_counter()
        if in_flight:
            ds = [threads.deferToThread(lambda i=i: i + 1) for i in range(n)]
            defer.gatherResults(ds).addCallback(lambda _: reactor.stop())
        else:
            one_at_a_time(n)

    reactor.callWhenRunning(start)
    reactor.run()
    return (time.perf_counter() - out["t"]) / n * 1e9


import sys

print(f"twisted {__import__('twisted').__version__}")
# The reactor cannot be restarted, so each reactor figure needs its own run:
#   python3 benches/peers/twisted_peer.py                          (the default set)
#   python3 benches/peers/twisted_peer.py deferToThread            (1,000 one at a time)
#   python3 benches/peers/twisted_peer.py deferToThread-in-flight  (1,000 in flight)
figure = sys.argv[1] if len(sys.argv) > 1 else None
if figure == "deferToThread":
    print(f"deferToThread round trip, 1,000 one at a time: {defer_to_thread(1_000, False):.0f} ns/call")
elif figure == "deferToThread-in-flight":
    print(f"deferToThread, 1,000 in flight: {defer_to_thread(1_000, True):.0f} ns/call")
else:
    print(f"new + 3 callbacks + fire: {per_op(three_callbacks, 100_000):.0f} ns")
    print(f"await succeed(x): {per_op(await_succeed, 100_000):.0f} ns")
    print(f"DeferredList of 10,000 fired: {per_op(deferred_list, 10_000) * 10_000 / 1e6:.2f} ms")
    print(f"callLater(0) + fire, 100,000 timers (run phase only): {call_later(100_000):.0f} ns")
