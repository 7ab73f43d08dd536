#!/usr/bin/env python3
"""``replay --every-frame`` vs realtime replay: throughput, frames kept, identical output.

    python tools/bench_replay.py [--recording recordings/sample.mkv] [--config config.yaml]
                                 [--frames 60] [--in-flight 1 2 4]

Each mode replays the same ``--frames`` frames (looping the recording) with ``--save-masks``:
realtime twice (the baseline: camera-rate pacing, latest-wins drops) and ``--every-frame`` twice at
the configured ``runtime.in_flight`` plus once at each other ``--in-flight``. Throughput is masks per
second on the bus between the first and the last mask (model loading excluded); frames kept come
from the run's masks.csv; two runs are identical when every PNG has the same bytes (SHA-256 over the
PNGs in frame-id order). Ratios are against the realtime run measured by the same process.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kinect_occlusion import messages as m  # noqa: E402
from kinect_occlusion.bus import Subscriber  # noqa: E402


def private_config(config: str, tmp: Path, in_flight: int | None) -> Path:
    """``config`` on private ipc endpoints in ``tmp`` (checkpoint path made absolute)."""
    cfg = yaml.safe_load(Path(config).read_text()) or {}
    base = Path(config).resolve().parent
    cfg.setdefault("bus", {}).update(frontend=f"ipc://{tmp}/in", backend=f"ipc://{tmp}/out")
    ckpt = cfg.setdefault("deeplab", {}).get("checkpoint")
    if ckpt:
        cfg["deeplab"]["checkpoint"] = str((base / ckpt).resolve())
    if in_flight is not None:
        cfg.setdefault("runtime", {})["in_flight"] = in_flight
        hwm = max(in_flight, cfg["bus"].get("sndhwm", 4), cfg["bus"].get("rcvhwm", 4))
        cfg["bus"].update(sndhwm=hwm, rcvhwm=hwm)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def replay(recording: str, config: str, frames: int, every_frame: bool, in_flight: int | None) -> dict:
    """One ``replay --save-masks`` run: mask arrivals on the bus, masks.csv counts, PNG digest."""
    tmp = Path(tempfile.mkdtemp(prefix="ko-brp-", dir="/tmp"))
    cfg = private_config(config, tmp, in_flight)
    out = tmp / "masks"
    args = ["replay", recording, "--loop", "--max-frames", str(frames), "--config", str(cfg)]
    args += ["--save-masks", str(out)] + (["--every-frame"] if every_frame else ["--rate", "realtime"])
    arrivals: list[float] = []
    t0 = time.monotonic()
    with Subscriber(f"ipc://{tmp}/out", "bed1", [m.TOPIC_OCCLUSION], rcvhwm=1000) as sub:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kinect_occlusion", *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while proc.poll() is None:
            if isinstance(sub.recv(200), m.OcclusionMask):
                arrivals.append(time.monotonic())
        proc.wait()
    wall = time.monotonic() - t0
    with (out / "masks.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["result"]] = counts.get(r["result"], 0) + 1
    digest = hashlib.sha256()
    for png in sorted(out.glob("*.png")):
        digest.update(png.name.encode() + png.read_bytes())
    shutil.rmtree(tmp, ignore_errors=True)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    return {
        "mode": f"every-frame k={in_flight}" if every_frame else "realtime",
        "exit": proc.returncode,
        "wall_s": round(wall, 1),
        "masks_per_s": round((len(arrivals) - 1) / span, 2) if span > 0 else 0.0,
        "rows": len(rows),
        "counts": counts,
        "pngs": len(list(out.glob("*.png"))),
        "sha256": digest.hexdigest()[:16],
    }


def print_table(runs: list[dict], frames: int, recording: str) -> None:
    base = runs[0]["masks_per_s"] or 1.0
    print(f"{Path(recording).name}, {frames} frames per run (masks/s between first and last mask)")
    print(
        f"{'run':<18} {'exit':>4} {'masks/s':>8} {'vs realtime':>11} {'wall s':>7}  "
        f"{'rows (CSV)':<34} png sha256"
    )
    for r in runs:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(r["counts"].items()))
        ratio = f"{r['masks_per_s'] / base:.2f}×"
        print(
            f"{r['mode']:<18} {r['exit']:>4} {r['masks_per_s']:>8} {ratio:>11} {r['wall_s']:>7}  "
            f"{counts:<34} {r['sha256']}"
        )
    every = [r for r in runs if r["mode"].startswith("every")]
    same = len({r["sha256"] for r in every}) == 1
    real = [r for r in runs if r["mode"] == "realtime"]
    print(
        f"every-frame runs identical (all PNG bytes): {'yes' if same else 'NO'} ({len(every)} runs); "
        f"realtime runs identical: {'yes' if len({r['sha256'] for r in real}) == 1 else 'no'}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recording", default=str(ROOT / "recordings" / "sample.mkv"))
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--frames", type=int, default=60, help="frames per run (looping the recording)")
    ap.add_argument("--in-flight", type=int, nargs="*", default=[1, 4], help="extra every-frame runs")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    runs = [replay(args.recording, args.config, args.frames, False, None) for _ in range(2)]
    runs += [replay(args.recording, args.config, args.frames, True, None) for _ in range(2)]
    runs += [replay(args.recording, args.config, args.frames, True, k) for k in args.in_flight]
    default_k = (yaml.safe_load(Path(args.config).read_text()) or {}).get("runtime", {}).get("in_flight", 2)
    for r in runs[2:4]:
        r["mode"] = f"every-frame k={default_k}"
    print_table(runs, args.frames, args.recording)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))
    return 0 if all(r["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
