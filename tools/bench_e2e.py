#!/usr/bin/env python3
"""End-to-end benchmark: replay a recording at camera rate through the whole pipeline and measure
capture→coarse and capture→fused latency (p50/p95), masks per second, and partition age.

    python tools/bench_e2e.py [--recording recordings/sample.mkv | --record-fps 30] [--config config.yaml]
                              [--frames 300]

The baseline for each latency is the stage before it (capture→coarse for capture→fused) and the
camera rate for the mask rates; all come from the same run.
"""

from __future__ import annotations

import argparse
import json
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


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def run(recording: str, config: str, max_frames: int, seconds: float = 120.0) -> dict:
    """Replay ``recording`` in real time; return latency/rate/age statistics."""
    tmp = Path(tempfile.mkdtemp(prefix="ko-e2e-", dir="/tmp"))
    cfg = yaml.safe_load(Path(config).read_text())
    base = Path(config).resolve().parent
    cfg.setdefault("bus", {}).update(frontend=f"ipc://{tmp}/in", backend=f"ipc://{tmp}/out")
    ckpt = cfg.setdefault("deeplab", {}).get("checkpoint")
    if ckpt:
        cfg["deeplab"]["checkpoint"] = str((base / ckpt).resolve())
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    camera = cfg.get("camera", {}).get("id", "bed1")
    topics = [m.TOPIC_COARSE, m.TOPIC_OCCLUSION, m.TOPIC_PARTITION]
    lat: dict[str, list[float]] = {t: [] for t in topics}
    arrivals: dict[str, list[float]] = {t: [] for t in topics}
    ages: list[float] = []
    with Subscriber(f"ipc://{tmp}/out", camera, topics, rcvhwm=1000) as sub:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kinect_occlusion",
                "replay",
                recording,
                "--loop",
                "--max-frames",
                str(max_frames),
                "--rate",
                "realtime",
                "--config",
                str(tmp / "config.yaml"),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + seconds
        while proc.poll() is None and time.monotonic() < deadline:
            msg = sub.recv(200)
            if msg is None:
                continue
            now_us = m.now_us()
            lat[msg.TOPIC].append((now_us - msg.origin_us) / 1000)
            arrivals[msg.TOPIC].append(time.monotonic())
            if isinstance(msg, m.OcclusionMask) and msg.fused:
                ages.append(msg.partition_age_ms)
        if proc.poll() is None:
            proc.terminate()
        proc.wait(30)
    out = {}
    for t, name in (
        (m.TOPIC_COARSE, "coarse"),
        (m.TOPIC_PARTITION, "partition"),
        (m.TOPIC_OCCLUSION, "fused"),
    ):
        a = arrivals[t]
        rate = (len(a) - 1) / (a[-1] - a[0]) if len(a) > 1 and a[-1] > a[0] else 0.0
        out[name] = {
            "count": len(a),
            "per_s": round(rate, 2),
            "latency_p50_ms": _pct(lat[t], 50),
            "latency_p95_ms": _pct(lat[t], 95),
        }
    out["partition_age_p50_ms"] = _pct(ages, 50)
    out["partition_age_p95_ms"] = _pct(ages, 95)
    out["fused_fraction"] = round(len(ages) / max(1, out["fused"]["count"]), 2)
    out["frames_replayed"] = max_frames
    return out


def record(fps: int, seconds: float) -> str:
    """A synthetic Azure Kinect recording at ``fps`` (made with our own recorder) in a temp folder."""
    out = Path(tempfile.mkdtemp(prefix="ko-e2e-rec-", dir="/tmp")) / f"synthetic_{fps}fps.mkv"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "kinect_occlusion",
            "record",
            str(out),
            "--seconds",
            str(seconds),
            "--fps",
            str(fps),
            "--source",
            "synthetic",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return str(out)


def print_table(r: dict) -> None:
    """Rates against the camera rate, latencies against the coarse stage (same run)."""
    fps, base = r["camera_fps"], r["coarse"]["latency_p50_ms"]
    print(f"{r['recording']} at {fps} fps, {r['frames_replayed']} frames (capture→stage latency, one host)")
    print(f"{'stage':<10} {'msgs/s':>7} {'vs camera':>9} {'p50 ms':>7} {'p95 ms':>7} {'p50 vs coarse':>13}")
    for stage in ("coarse", "partition", "fused"):
        x = r[stage]
        p50 = x["latency_p50_ms"]
        ratio = f"{p50 / base:.2f}×" if p50 and base else "-"
        rate, p95 = x["per_s"], x["latency_p95_ms"]
        print(f"{stage:<10} {rate:>7} {rate / fps:>8.2f}× {p50!s:>7} {p95!s:>7} {ratio:>13}")
    print(
        f"partition age p50 {r['partition_age_p50_ms']} ms, p95 {r['partition_age_p95_ms']} ms; "
        f"{r['fused_fraction']:.0%} of masks fused (rest: coarse fallback)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recording", default=None, help="default: the bundled sample, or --record-fps")
    ap.add_argument(
        "--record-fps", type=int, default=None, help="record a synthetic 1280×720 clip at this fps"
    )
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--frames", type=int, default=300, help="frames to replay (looping the recording)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    recording = args.recording or str(ROOT / "recordings" / "sample.mkv")
    if args.record_fps:
        recording = record(args.record_fps, 4.0)
    from kinect_occlusion.sources.mkv import probe_mkv

    r = run(recording, args.config, args.frames)
    r["recording"] = Path(recording).name
    r["camera_fps"] = probe_mkv(recording, count_frames=False).fps
    print_table(r)
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
