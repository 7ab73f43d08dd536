#!/usr/bin/env python3
"""What one raw colour frame costs on the ward bus: frames through our Proxy over ipc://, tcp:// and
tcp:// + CURVE, to 1 or 2 subscribers (a ward server's deeplab and partition workers both take every
colour frame), raw or JPEG.

The publisher (another process) sends ``--frames`` frames as fast as the bus takes them (every frame
is kept: no HWM drop); the subscribers run here. Reported per run: frames/s and MB/s of the
publisher's bytes, and the CPU seconds of both processes per frame delivered to every subscriber.
Ratios are against ipc:// with the same subscribers and encoding, measured in the same run.

    python tools/bench_curve.py [--frames 300] [--size 640 360] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _image(size: tuple[int, int]) -> np.ndarray:
    """A smooth synthetic picture (a random one would make JPEG unrealistically large)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 255 // w), (y * 255 // h), ((x + y) % 256)], -1).astype(np.uint8)


def _publisher(front: str, keys: str | None, n: int, size, encoding: str, ready, done) -> None:
    from kinect_occlusion import messages as m
    from kinect_occlusion.bus import Publisher, load_curve

    curve = (
        load_curve(keys, "server.key_secret", "client.key_secret", "authorized", server=False)
        if keys
        else None
    )
    pub = Publisher(front, sndhwm=n + 10, curve=curve)
    img = _image(size)
    ready.wait(20)
    time.sleep(1.0)  # subscriptions reach the publisher
    for i in range(n):
        pub.publish(
            m.ColorFrame(
                camera="bed1", frame_id=i, ts_us=i, origin_us=m.now_us(), image=img, encoding=encoding
            )
        )
    done.wait(60)
    pub.close()


def _cpu_s(pid: int) -> float:
    t = os.times() if pid == os.getpid() else None
    if t is not None:
        return t.user + t.system
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one(bus: str, subs_n: int, encoding: str, n: int, size, keys_dir: Path) -> dict:
    """One run; its row."""
    import zmq

    from kinect_occlusion import messages as m
    from kinect_occlusion.bus import Proxy, Subscriber, load_curve

    tmp = tempfile.mkdtemp(prefix="kocurve-", dir="/tmp")
    if bus == "ipc":
        front, back = f"ipc://{tmp}/in", f"ipc://{tmp}/out"
    else:
        front, back = f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}"
    curve = bus == "tcp-curve"
    server = load_curve(str(keys_dir), "server.key_secret", "", "authorized", server=True) if curve else None
    client = load_curve(str(keys_dir), "server.key_secret", "client.key_secret", "authorized", server=False)
    ctx = mp.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    with Proxy(front, back, hwm=n + 10, curve=server):
        subs = [
            Subscriber(back, "bed1", [m.TOPIC_COLOR], n + 10, client if curve else None)
            for _ in range(subs_n)
        ]
        proc = ctx.Process(
            target=_publisher, args=(front, str(keys_dir) if curve else None, n, size, encoding, ready, done)
        )
        proc.start()
        cpu0 = _cpu_s(os.getpid())
        ready.set()
        got, first, last = [0] * subs_n, None, None
        poller = zmq.Poller()
        for s in subs:
            poller.register(s.sock, zmq.POLLIN)
        while sum(got) < n * subs_n:
            ready_socks = dict(poller.poll(3000 if first else 30000))
            if not ready_socks:
                break  # 3 s without a frame: the rest was lost
            for k, s in enumerate(subs):
                if s.sock in ready_socks and s.recv(50) is not None:
                    got[k] += 1
                    last = time.perf_counter()
                    first = first or last
        cpu = _cpu_s(os.getpid()) - cpu0 + _cpu_s(proc.pid)
        done.set()
        proc.join()
        for s in subs:
            s.close()
    shutil.rmtree(tmp, ignore_errors=True)
    frame_mb = (
        len(
            m.encode(m.ColorFrame(camera="bed1", frame_id=0, ts_us=0, image=_image(size), encoding=encoding))[
                2
            ]
        )
        / 1e6
    )
    secs = (last - first) if first and last and last > first else float("nan")
    fps = (min(got) - 1) / secs
    return {
        "bus": bus,
        "subscribers": subs_n,
        "encoding": encoding,
        "frame_mb": round(frame_mb, 3),
        "received": min(got),
        "fps": round(fps, 1),
        "mb_per_s": round(fps * frame_mb, 1),
        "cpu_ms_per_frame": round(cpu / max(1, min(got)) * 1000, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", type=int, nargs=2, default=[640, 360], metavar=("W", "H"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from kinect_occlusion.commands.keys import generate

    keys = Path(tempfile.mkdtemp(prefix="kocurve-keys-"))
    generate(keys, ["client"], [])
    rows = []
    try:
        for encoding in ("raw", "jpeg"):
            for subs_n in (1, 2):
                base = None
                for bus in ("ipc", "tcp", "tcp-curve"):
                    r = one(bus, subs_n, encoding, args.frames, tuple(args.size), keys)
                    base = base or r
                    r["fps_vs_ipc"] = round(r["fps"] / base["fps"], 2) if base["fps"] else None
                    r["cpu_vs_ipc"] = round(r["cpu_ms_per_frame"] / base["cpu_ms_per_frame"], 2)
                    rows.append(r)
                    print(json.dumps(r), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(keys, ignore_errors=True)
    print(
        f"\n{args.size[0]}x{args.size[1]} colour frames, {args.frames} per run, publisher unpaced, "
        f"{os.cpu_count()} cores"
    )
    print(
        "| encoding | subscribers | bus | MB/frame | frames/s | MB/s | CPU ms per frame | "
        "frames/s × ipc | CPU × ipc |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['encoding']} | {r['subscribers']} | {r['bus']} | {r['frame_mb']} | {r['fps']} | "
            f"{r['mb_per_s']} | "
            f"{r['cpu_ms_per_frame']} | {r['fps_vs_ipc']} | {r['cpu_vs_ipc']} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
