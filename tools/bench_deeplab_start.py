#!/usr/bin/env python3
"""DeepLab worker start-up on onnxruntime: exporting the checkpoint at each start (baseline) vs
running the export kept in ``deeplab.onnx_cache``.

Each trial is a fresh process that builds the worker's predictor and runs one warm-up frame, as a
worker's start or restart does; the time is measured around that process (imports included).

    python tools/bench_deeplab_start.py [--checkpoint recordings/demo_model.pt] [--trials 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys
from kinect_occlusion.config import DeepLabConfig
from kinect_occlusion.deeplab.worker import build_predictor, warm_up
dl = DeepLabConfig(checkpoint=sys.argv[1], onnx_cache=sys.argv[2] or None, runtime="onnx", threads=1)
predictor, card = build_predictor(dl)
warm_up(predictor, card.input_size)
print("torch" in sys.modules)
"""


def start_once(checkpoint: str, cache: str) -> tuple[float, bool]:
    """(seconds, whether torch was imported) of one fresh process's start."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, checkpoint, cache], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return time.perf_counter() - t0, done.stdout.strip() == "True"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "recordings" / "demo_model.pt"))
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ko-bench-cache-") as cache:
        start_once(args.checkpoint, cache)  # fills the cache
        rows = {}
        for name, folder in (
            ("export each start (onnx_cache: null)", ""),
            ("kept export (onnx_cache)", cache),
        ):
            runs = [start_once(args.checkpoint, folder) for _ in range(args.trials)]
            rows[name] = (statistics.median(t for t, _ in runs), runs[0][1])
    base = next(iter(rows.values()))[0]
    print(f"DeepLab worker start, {args.trials} trials each, median (checkpoint {args.checkpoint}):")
    for name, (seconds, torch) in rows.items():
        print(f"  {name:40s} {seconds:6.2f} s  torch imported: {torch}  speed-up ×{base / seconds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
