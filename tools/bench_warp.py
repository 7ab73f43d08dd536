#!/usr/bin/env python3
"""Partitions that follow motion: fused IoU with a partition of age 0–2 s, warped vs reused vs fresh.

    python tools/bench_warp.py [--seeds 0 1 2 3] [--ages 0 0.5 1 2] [--json OUT]

Synthetic 1280×720 scenes (kinect_occlusion/sources/synthetic.py: breathing, swaying cables) on a
patient/camera that moves rigidly (``--speed`` px/s and ``--turn`` °/s about the bed's centre), so
the partition of an older frame no longer lines up. At t = ``--now`` the coarse branch (the demo
model, recordings/demo_model.pt) sees the current frame; the partition (superpixels, SEEDS 300,
full frame) comes from the frame ``age`` seconds older and is used three ways: ``reused`` as is
(today's worker), ``warped`` to the current frame (sam/warp.py), and ``fresh`` (computed on the
current frame: the upper bound). Fused = soft vote; IoU against the truth inside the moved bed ROI.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def moved_scene(seed: int, t: float, speed: float, turn: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb, truth, ROI mask) of scene ``seed`` at ``t`` after a rigid motion of the whole view."""
    from kinect_occlusion.sources.synthetic import render_scene

    sc = render_scene(seed, t=t)
    x, y, w, h = sc.roi
    m = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), turn * t, 1.0)
    m[:, 2] += (speed * t * 0.8, speed * t * 0.6)
    size = (sc.rgb.shape[1], sc.rgb.shape[0])
    rgb = cv2.warpAffine(sc.rgb, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    truth = cv2.warpAffine(sc.truth, m, size, flags=cv2.INTER_NEAREST)
    roi = np.zeros(sc.truth.shape, np.uint8)
    roi[y : y + h, x : x + w] = 1
    return rgb, truth, cv2.warpAffine(roi, m, size, flags=cv2.INTER_NEAREST).astype(bool)


def fused_iou(prob: np.ndarray, labels: np.ndarray, truth: np.ndarray, roi: np.ndarray) -> float:
    """IoU of the soft-voted mask against the truth inside the ROI."""
    from kinect_occlusion.fuser.vote import binary_probs, soft_vote

    fused = soft_vote(binary_probs(prob), labels)[0].astype(bool)
    t = truth.astype(bool)
    inter, union = (fused & t & roi).sum(), ((fused | t) & roi).sum()
    return float(inter / union) if union else float("nan")


def one_case(ctx: dict[str, Any], seed: int, age: float) -> dict[str, float]:
    """Coarse, fresh, reused and warped IoU (and warp ms) for one scene and partition age."""
    from kinect_occlusion.sam.warp import warp_labels

    now, speed, turn = ctx["now"], ctx["speed"], ctx["turn"]
    rgb, truth, roi = moved_scene(seed, now, speed, turn)
    old_rgb = moved_scene(seed, now - age, speed, turn)[0]
    prob = ctx["coarse"].predict(rgb)
    old, fresh = ctx["part"](old_rgb).labels, ctx["part"](rgb).labels
    t0 = time.perf_counter()
    warped = warp_labels(old, old_rgb, rgb)
    warp_ms = (time.perf_counter() - t0) * 1000
    t = truth.astype(bool)
    coarse_iou = float(((prob >= 0.5) & t & roi).sum() / max(1, ((prob >= 0.5) | t)[roi].sum()))
    return {
        "coarse": coarse_iou,
        "fresh": fused_iou(prob, fresh, truth, roi),
        "reused": fused_iou(prob, old, truth, roi),
        "warped": fused_iou(prob, warped.labels, truth, roi),
        "warp_ms": warp_ms,
        "reliable": warped.reliable,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--ages", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    ap.add_argument("--now", type=float, default=2.0, help="time of the current frame (s)")
    ap.add_argument("--speed", type=float, default=30.0, help="translation of the view (px/s)")
    ap.add_argument("--turn", type=float, default=2.0, help="rotation of the view (°/s)")
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "recordings" / "demo_model.pt")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    import torch

    from kinect_occlusion.deeplab.model import load_checkpoint
    from kinect_occlusion.deeplab.predict import CoarsePredictor
    from kinect_occlusion.sam.partitioner import SuperpixelPartitioner

    torch.set_num_threads(2)
    ctx = {"now": args.now, "speed": args.speed, "turn": args.turn}
    ctx["coarse"] = CoarsePredictor(load_checkpoint(args.checkpoint), device="cpu")
    ctx["part"] = SuperpixelPartitioner("seeds", 300)
    print(f"moving view: {args.speed} px/s, {args.turn} °/s; seeds {args.seeds}; SEEDS 300 superpixels")
    print(
        f"{'age s':>6s}{'coarse':>8s}{'fresh':>8s}{'reused':>8s}{'warped':>8s}{'reliable':>9s}{'warp ms':>9s}"
    )
    table = {}
    for age in args.ages:
        cases = [one_case(ctx, s, age) for s in args.seeds]
        row = {k: statistics.mean(c[k] for c in cases) for k in cases[0] if k != "warp_ms"}
        row["warp_ms"] = statistics.median(c["warp_ms"] for c in cases)
        table[str(age)] = row
        print(
            f"{age:6.1f}{row['coarse']:8.4f}{row['fresh']:8.4f}{row['reused']:8.4f}{row['warped']:8.4f}"
            f"{row['reliable']:9.3f}{row['warp_ms']:9.1f}",
            flush=True,
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": table}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
