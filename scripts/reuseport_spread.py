#!/usr/bin/env python3
"""How evenly the kernel spreads connections over SO_REUSEPORT listeners on loopback: the
measurement behind the herd's one accept loop that gives each connection to the worker
with the fewest open (docs/benchmarks.md, "Every core"). Prints the busiest listener's
share for 2 listeners and 50 connections, and for 8.

    python3 scripts/reuseport_spread.py
"""
import socket
import statistics


def trial(listeners, conns):
    """Accepted connections per listener, for `conns` connections to `listeners` sockets
    bound to one port with SO_REUSEPORT."""
    ls, port = [], 0
    for _ in range(listeners):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1024)
        port = s.getsockname()[1]
        s.setblocking(False)
        ls.append(s)
    cs = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
    counts = []
    for s in ls:
        n = 0
        while True:
            try:
                c, _ = s.accept()
            except BlockingIOError:
                break
            c.close()
            n += 1
        counts.append(n)
    for c in cs + ls:
        c.close()
    return counts


for listeners, trials in ((2, 200), (8, 100)):
    over = sorted(max(c) / (sum(c) / listeners) for c in (trial(listeners, 50) for _ in range(trials)))
    print(
        f"{listeners} listeners, 50 connections, {trials} trials: the busiest listener holds "
        f"{statistics.median(over):.2f}x an even share (median), {over[int(0.9 * trials) - 1]:.2f}x "
        f"(p90), {over[-1]:.2f}x (max)"
    )
