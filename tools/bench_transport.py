#!/usr/bin/env python3
"""Transport benchmark: 1280×720 RGB frames through our bus (proxy, multipart, zero-copy) vs imagezmq.

The publisher runs in another process; the subscriber here receives every message. Each run
reports sustained fps (received / elapsed) and latency p50/p95 (receive time − send time, one host).

    python tools/bench_transport.py [--frames 300] [--fps 0|30] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPE = (720, 1280, 3)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ours_publisher(front: str, n: int, fps: float, ready) -> None:
    from kinect_occlusion import messages as m
    from kinect_occlusion.bus import Publisher

    pub = Publisher(front, sndhwm=n + 10)
    img = np.random.default_rng(0).integers(0, 256, SHAPE, dtype=np.uint8)
    ready.wait(10)
    time.sleep(0.5)
    t0 = time.perf_counter()
    for i in range(n):
        pub.publish(m.ColorFrame(camera="bench", frame_id=i, ts_us=i, origin_us=m.now_us(), image=img))
        if fps:
            time.sleep(max(0.0, t0 + (i + 1) / fps - time.perf_counter()))
    time.sleep(1.0)
    pub.close()


def bench_ours(scheme: str, n: int, fps: float) -> dict:
    """Our proxy + Publisher/Subscriber, every message received."""
    from kinect_occlusion import messages as m
    from kinect_occlusion.bus import Proxy, Subscriber

    tmp = tempfile.mkdtemp(prefix="kob-", dir="/tmp")
    if scheme == "ipc":
        front, back = f"ipc://{tmp}/in", f"ipc://{tmp}/out"
    else:
        front, back = f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}"
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    with Proxy(front, back, hwm=n + 10), Subscriber(back, "bench", [m.TOPIC_COLOR], rcvhwm=n + 10) as sub:
        proc = ctx.Process(target=_ours_publisher, args=(front, n, fps, ready))
        proc.start()
        ready.set()
        lat, first, last = [], None, None
        while True:
            msg = sub.recv(3000)
            if msg is None:
                break
            now = time.perf_counter()
            first = first or now
            last = now
            lat.append((m.now_us() - msg.origin_us) / 1000)
        proc.join()
    shutil.rmtree(tmp, ignore_errors=True)
    return _summary(f"ours {scheme}", n, lat, first, last)


def _imagezmq_publisher(port: int, n: int, fps: float, ready) -> None:
    import imagezmq

    sender = imagezmq.ImageSender(connect_to=f"tcp://127.0.0.1:{port}", REQ_REP=False)
    img = np.random.default_rng(0).integers(0, 256, SHAPE, dtype=np.uint8)
    ready.wait(10)
    time.sleep(1.0)
    t0 = time.perf_counter()
    for i in range(n):
        sender.send_image(str(time.time_ns() // 1000), img)
        if fps:
            time.sleep(max(0.0, t0 + (i + 1) / fps - time.perf_counter()))
    time.sleep(1.0)


def bench_imagezmq(n: int, fps: float) -> dict:
    """imagezmq PUB/SUB (the sender binds, the hub connects), tcp only."""
    import imagezmq

    port = _free_port()
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_imagezmq_publisher, args=(port, n, fps, ready))
    proc.start()
    hub = imagezmq.ImageHub(open_port=f"tcp://127.0.0.1:{port}", REQ_REP=False)
    hub.zmq_socket.setsockopt(__import__("zmq").RCVTIMEO, 4000)
    ready.set()
    lat, first, last = [], None, None
    while True:
        try:
            sent, _img = hub.recv_image()
        except Exception:  # RCVTIMEO: the sender is done
            break
        now = time.perf_counter()
        first = first or now
        last = now
        lat.append((time.time_ns() // 1000 - int(sent)) / 1000)
    proc.join()
    hub.close()
    return _summary("imagezmq tcp", n, lat, first, last)


def _summary(name: str, n: int, lat: list, first, last) -> dict:
    got = len(lat)
    fps = (got - 1) / (last - first) if got > 1 and last > first else 0.0
    arr = np.asarray(lat) if lat else np.asarray([np.nan])
    return {
        "name": name,
        "sent": n,
        "received": got,
        "fps": round(fps, 1),
        "p50_ms": round(float(np.percentile(arr, 50)), 2),
        "p95_ms": round(float(np.percentile(arr, 95)), 2),
    }


def run(n: int, fps: float) -> list[dict]:
    """All transport runs; ratios are against imagezmq over tcp measured in the same process."""
    rows = [bench_imagezmq(n, fps), bench_ours("tcp", n, fps), bench_ours("ipc", n, fps)]
    base = rows[0]
    for r in rows:
        r["fps_ratio_vs_imagezmq"] = round(r["fps"] / base["fps"], 2) if base["fps"] else None
        r["p50_ratio_vs_imagezmq"] = round(r["p50_ms"] / base["p50_ms"], 2) if base["p50_ms"] else None
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--fps", type=float, default=0, help="publisher rate; 0 = as fast as possible")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = run(args.frames, args.fps)
    print(
        f"1280x720 RGB, {args.frames} frames, publisher rate {'max' if not args.fps else args.fps} "
        f"({platform.processor() or platform.machine()}, {mp.cpu_count()} cores)"
    )
    print(f"{'transport':<14} {'recv':>6} {'fps':>7} {'p50 ms':>8} {'p95 ms':>8} {'fps×':>6} {'p50×':>6}")
    for r in rows:
        print(
            f"{r['name']:<14} {r['received']:>6} {r['fps']:>7} {r['p50_ms']:>8} {r['p95_ms']:>8} "
            f"{r['fps_ratio_vs_imagezmq']!s:>6} {r['p50_ratio_vs_imagezmq']!s:>6}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
