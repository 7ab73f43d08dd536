#!/usr/bin/env python3
"""Viewer cost: the pipeline's fused rate and capture→fused p95 with 0, 1 and 5 browser pages open.

    python tools/bench_viewer.py [--config config.yaml] [--fps 15] [--size 1280x720] [--seconds 20]

Runs ``kinect-occlusion run`` on the synthetic scene with ``viewer.enabled`` (the daemon's own viewer
process), then opens N bed pages in one headless Debian chromium (Playwright, /usr/bin/chromium) and
measures, from a subscriber of its own, the masks per second and capture→fused latency over
``--seconds``, and the CPU time of the pipeline, of the viewer process and of the browser. The
0/1/5-page sequence repeats ``--rounds`` times (means are printed) so a shared machine's drift
spreads over every condition. The browser runs on the same host here, so its own decoding counts against the
pipeline: an upper bound on what a browser on another machine costs.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kinect_occlusion import messages as m  # noqa: E402
from kinect_occlusion.bus import Subscriber  # noqa: E402
from kinect_occlusion.viewer.chromium import CHROMIUM, FLAGS  # noqa: E402

TOKEN = "bench-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(base: str, tmp: Path, fps: int, size: tuple[int, int], port: int) -> Path:
    """The shipped config with a synthetic camera, private endpoints and the viewer on."""
    cfg = yaml.safe_load(Path(base).read_text())
    ckpt = cfg.get("deeplab", {}).get("checkpoint")
    if ckpt:
        cfg["deeplab"]["checkpoint"] = str((Path(base).resolve().parent / ckpt).resolve())
    cfg.setdefault("camera", {}).update(
        source="synthetic", fps=fps, synthetic_size=list(size), depth_mode="OFF", rate="realtime"
    )
    cfg.setdefault("bus", {}).update(frontend=f"ipc://{tmp}/in", backend=f"ipc://{tmp}/out")
    cfg["viewer"] = {"enabled": True, "port": port, "token": TOKEN}
    cfg.setdefault("runtime", {})["report_interval_s"] = 60
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def measure(sub: Subscriber, seconds: float) -> dict:
    """Masks per second (frames with a mask: a frame's coarse fallback and its later fused mask count
    once) and capture→fused latency over ``seconds``."""
    lat, arrivals, frames = [], [], set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for msg in sub.drain(100):
            if isinstance(msg, m.OcclusionMask) and msg.frame_id not in frames:  # one per frame
                frames.add(msg.frame_id)
                lat.append((m.now_us() - msg.origin_us) / 1000)
                arrivals.append(time.monotonic())
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
    p50, p95 = (float(np.percentile(lat, q)) for q in (50, 95)) if lat else (float("nan"),) * 2
    return {"fused_per_s": round(rate, 2), "p50_ms": round(p50, 1), "p95_ms": round(p95, 1)}


# ----------------------------------------------------------------------------- CPU time from /proc

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from 3 on (state, ppid, …)


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))):
            children.setdefault(int(st[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far."""
    total = 0
    for pid in pids:
        st = _stat(pid)
        if st:
            total += int(st[11]) + int(st[12])  # utime, stime
    return total / TICK


def roles(run_pid: int) -> dict[str, list[int]]:
    """pipeline (supervisor + workers), viewer (the niced child) and browser (chromium + driver)."""
    tree = descendants(run_pid)
    viewer = [p for p in tree if (st := _stat(p)) and int(st[16]) >= 10]  # nice
    browser = [p for p in descendants(os.getpid()) if p not in tree and p != os.getpid()]
    return {"pipeline": [p for p in tree if p not in viewer], "viewer": viewer, "browser": browser}


def received(pages) -> list[int]:
    js = "() => Number(document.querySelector('canvas').dataset.received)"
    return [int(p.evaluate(js)) for p in pages]


def open_pages(context, url: str, n: int, pages: list) -> None:
    """Grow ``pages`` to ``n`` bed pages, each showing pictures."""
    while len(pages) < n:
        page = context.new_page()
        page.goto(f"{url}/bed/bed1?token={TOKEN}")
        pages.append(page)
    deadline = time.monotonic() + 30
    while min(received(pages), default=1) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)


def condition(sub, context, url, n, pages, seconds, run_pid) -> dict:
    for page in pages[n:]:
        page.close()
    del pages[n:]
    open_pages(context, url, n, pages)
    time.sleep(2.0)  # settle after opening pages
    before, t0, procs = received(pages), time.monotonic(), roles(run_pid)
    cpu0 = {k: cpu_seconds(v) for k, v in procs.items()}
    result = measure(sub, seconds)
    after, elapsed = received(pages), time.monotonic() - t0
    per_page = [(a - b) / elapsed for a, b in zip(after, before, strict=True)]
    for k, v in procs.items():
        result[f"{k}_cpu_pct"] = round(100 * (cpu_seconds(v) - cpu0[k]) / elapsed, 1)
    result["pages"] = n
    result["pictures_per_s_per_page"] = round(float(np.mean(per_page)), 1) if per_page else 0.0
    return result


def run(args: argparse.Namespace) -> list[dict]:
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="ko-bv-", dir="/tmp"))
    port = free_port()
    w, h = (int(v) for v in args.size.split("x"))
    cfg = write_config(args.config, tmp, args.fps, (w, h), port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kinect_occlusion", "run", "--config", str(cfg)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = []
    try:
        with Subscriber(f"ipc://{tmp}/out", "bed1", [m.TOPIC_OCCLUSION], rcvhwm=1000) as sub:
            measure(sub, args.warmup)  # models loaded, rates settled
            with sync_playwright() as p:
                context = p.chromium.launch_persistent_context(
                    str(tmp / "profile"), executable_path=CHROMIUM, args=list(FLAGS), headless=True
                )
                pages: list = []
                for n in (0, 1, 5) * args.rounds:
                    url = f"http://127.0.0.1:{port}"
                    results.append(condition(sub, context, url, n, pages, args.seconds, proc.pid))
                    print(json.dumps(results[-1]), flush=True)
                context.close()
    finally:
        proc.terminate()
        proc.wait(60)
    return results


def print_table(results: list[dict], args: argparse.Namespace) -> None:
    """Mean over rounds per number of pages; ratios against no page."""
    rows = {n: [r for r in results if r["pages"] == n] for n in (0, 1, 5)}
    mean = {n: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} for n, rs in rows.items()}
    base = mean[0]
    print(
        f"synthetic {args.size} at {args.fps} fps, demo model, superpixels; "
        f"{args.rounds} rounds of 0/1/5 pages, {args.seconds:.0f} s each; means"
    )
    print("pages  fused/s  vs none  p50 ms  p95 ms  vs none  pics/s/page  CPU%: pipeline  viewer  browser")
    for n, r in mean.items():
        print(
            f"{n:>5} {r['fused_per_s']:>8.2f} {r['fused_per_s'] / base['fused_per_s']:>7.2f}× "
            f"{r['p50_ms']:>7.0f} {r['p95_ms']:>7.0f} {r['p95_ms'] / base['p95_ms']:>7.2f}× "
            f"{r['pictures_per_s_per_page']:>12.1f} {r['pipeline_cpu_pct']:>15.0f} "
            f"{r['viewer_cpu_pct']:>7.0f} {r['browser_cpu_pct']:>8.0f}"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "config.yaml"), help="base config (demo model)")
    ap.add_argument("--fps", type=int, default=15, choices=[5, 15, 30], help="camera rate")
    ap.add_argument("--size", default="1280x720", help="synthetic frame size WxH")
    ap.add_argument("--seconds", type=float, default=20.0, help="measuring time per condition")
    ap.add_argument("--warmup", type=float, default=30.0, help="time for the models to load and settle")
    ap.add_argument("--rounds", type=int, default=2, help="repeats of the 0/1/5-page sequence")
    ap.add_argument("--json", default=None, help="also write every row as JSON here")
    args = ap.parse_args()
    start = time.monotonic()
    results = run(args)
    print_table(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": results, "args": vars(args)}, indent=1))
    print(f"bench wall time {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
