#!/usr/bin/env python3
"""Reproduce the libzmq close race that can abort a process holding our proxy.

libzmq 4.3.5 asserts (``Resource temporarily unavailable (src/session_base.cpp:233)``, SIGABRT)
when a peer leaves while the proxy's session toward it is half-way through a multipart message and
already closing. Each trial is a fresh child process: our :class:`~kinect_occlusion.bus.Proxy`,
subscribers that never read (so the proxy's sessions stall mid-message), a publisher flooding
4-part messages, then the sockets closed in the order given:

    s  this process's subscribers close          p  the publisher closes
    x  the proxy stops (Proxy.stop: returns once its sessions are gone)

``spx`` is what the supervisor did before (its own subscriber, then publisher, then the proxy);
``xsp`` is what it does now. ``--quiet-s`` sets how long the stopped proxy waits before closing its
sockets (``bus.CLOSE_QUIET_S``; 0 shows the bare race). Run it again after a pyzmq/libzmq upgrade
to see whether the bug is gone.

    python tools/zmq_close_race.py [--orders spx xsp] [--trials 40] [--subscribers 4] [--quiet-s S]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def trial(order: str, folder: str, subscribers: int, quiet_s: float) -> None:
    """One child: open, flood for 0.3 s, close in ``order`` (the process aborts on the race)."""
    import zmq

    from kinect_occlusion import bus
    from kinect_occlusion.bus import Proxy

    bus.CLOSE_QUIET_S = quiet_s

    front, back = f"ipc://{folder}/in", f"ipc://{folder}/out"
    proxy = Proxy(front, back, hwm=4).start()
    ctx = zmq.Context.instance()
    subs = []
    for _ in range(subscribers):
        sub = ctx.socket(zmq.SUB)
        sub.linger, sub.rcvhwm = 0, 2
        sub.subscribe(b"")
        sub.connect(back)
        subs.append(sub)
    pub = ctx.socket(zmq.PUB)
    pub.linger, pub.sndhwm = 0, 16
    pub.connect(front)
    time.sleep(0.2)  # subscriptions reach the publisher
    middle, last = b"m" * 150_000, b"l" * 300_000
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        try:
            pub.send_multipart([b"t/", b"h" * 200, middle, last], flags=zmq.NOBLOCK)
        except zmq.Again:
            time.sleep(0.001)
    steps = {
        "s": lambda: [sub.close(linger=0) for sub in subs],
        "p": lambda: pub.close(linger=0),
        "x": proxy.stop,
    }
    for step in order:
        steps[step]()


def count(order: str, trials: int, subscribers: int, quiet_s: float) -> int:
    """How many of ``trials`` children died (SIGABRT: -6)."""
    died = 0
    for _ in range(trials):
        with tempfile.TemporaryDirectory(prefix="ko-race-") as folder:
            args = [sys.executable, __file__, "--child", order, folder, str(subscribers), str(quiet_s)]
            died += subprocess.run(args, capture_output=True, timeout=60).returncode != 0
    return died


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        trial(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", nargs="+", default=["spx", "xsp"], help="close orders (letters s, p, x)")
    ap.add_argument("--trials", type=int, default=40, help="child processes per order")
    ap.add_argument("--subscribers", type=int, default=4, help="never-reading subscribers")
    ap.add_argument("--quiet-s", type=float, default=None, help="bus.CLOSE_QUIET_S (default: ours)")
    args = ap.parse_args()
    for order in args.orders:
        if sorted(order) != ["p", "s", "x"]:
            ap.error(f"order {order!r}: use each of s, p, x once")
    import zmq

    from kinect_occlusion import bus

    quiet_s = bus.CLOSE_QUIET_S if args.quiet_s is None else args.quiet_s
    print(f"pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}, quiet {quiet_s} s, pid {os.getpid()}")
    for order in args.orders:
        died = count(order, args.trials, args.subscribers, quiet_s)
        print(f"{order}: {died} of {args.trials} trials aborted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
