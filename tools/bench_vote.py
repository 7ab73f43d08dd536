#!/usr/bin/env python3
"""Soft-vote benchmark: vectorised ``soft_vote`` vs the naive per-segment loop at 1280×720.

python tools/bench_vote.py [--segments 300] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kinect_occlusion.fuser.vote import binary_probs, soft_vote, soft_vote_naive  # noqa: E402


def make_inputs(segments: int, h: int = 720, w: int = 1280, seed: int = 0):
    """A smooth probability map and a Voronoi-like label image with ``segments`` segments."""
    import cv2

    rng = np.random.default_rng(seed)
    prob = cv2.resize(rng.random((h // 40, w // 40)).astype(np.float32), (w, h))
    seeds = np.zeros((h, w), np.uint8)
    ys, xs = rng.integers(0, h, segments), rng.integers(0, w, segments)
    seeds[ys, xs] = 1
    _, labels = cv2.distanceTransformWithLabels(1 - seeds, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    return prob, labels.astype(np.int32)


def best_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return min(times)


def run(segments: int = 300, repeat: int = 5) -> dict:
    """ms per call of both implementations on the same inputs, and the ratio."""
    prob, labels = make_inputs(segments)
    probs = binary_probs(prob)
    fast, _ = soft_vote(probs, labels)
    assert np.array_equal(fast, soft_vote_naive(probs, labels))
    naive_ms = best_ms(lambda: soft_vote_naive(probs, labels), max(1, repeat // 2))
    fast_ms = best_ms(lambda: soft_vote(probs, labels), repeat)
    return {
        "segments": int(labels.max()),
        "shape": list(labels.shape),
        "naive_ms": round(naive_ms, 1),
        "vectorised_ms": round(fast_ms, 1),
        "speedup": round(naive_ms / fast_ms, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--segments", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args()
    r = run(args.segments, args.repeat)
    print(
        f"soft vote {r['shape'][1]}x{r['shape'][0]}, {r['segments']} segments: naive {r['naive_ms']} ms, "
        f"vectorised {r['vectorised_ms']} ms, speed-up {r['speedup']}x"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
