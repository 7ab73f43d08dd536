#!/usr/bin/env python3
"""Fine-branch benchmark: SAM vit_b cost per frame (40×40, 16×16, guided prompts) vs superpixels.

Timing does not depend on weights, so SAM vit_b is randomly initialised. Measured: the image
encoder once, and ONE batch of 64 point prompts through the generator's decoder path (decoder,
mask upsampling, filters, RLE). Full-frame SAM times are EXTRAPOLATED: encoder + ceil(prompts/64) ×
batch (per-frame NMS and small-region clean-up are not included). Superpixels are measured at
1280×720. Agreement (guided vs 40×40 partition, tiny random SAM) is NOT a quality figure.

    python tools/bench_partition.py [--json OUT] [--seed 0] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BATCH = 64


def scene(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """(rgb, truth, coarse prob, roi) of a 1280×720 synthetic ICU scene; prob = blurred, noisy truth."""
    from kinect_occlusion.sources.synthetic import render_scene

    sc = render_scene(seed, 1280, 720)
    rng = np.random.default_rng(seed)
    prob = cv2.GaussianBlur(sc.truth.astype(np.float32), (0, 0), 4)
    prob = np.clip(prob + rng.normal(0, 0.05, prob.shape).astype(np.float32), 0, 1)
    return sc.rgb, sc.truth.astype(bool), prob, tuple(int(v) for v in sc.roi)  # type: ignore[return-value]


def timed(fn, repeat: int = 1) -> tuple[float, Any]:
    """Median milliseconds of ``repeat`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times)), out


def time_sam_vit_b(rgb: np.ndarray, device: str = "cpu") -> dict[str, float]:
    """Encoder ms (one run) and ms of one 64-prompt decoder batch through the generator's path."""
    import torch
    from segment_anything import SamAutomaticMaskGenerator, sam_model_registry

    from kinect_occlusion.sam.partition import amg_kwargs

    sam = sam_model_registry["vit_b"](checkpoint=None).eval().to(device)

    def synced(fn):
        def run():
            result = fn()
            if device == "cuda":
                torch.cuda.synchronize()
            return result

        return run

    out: dict[str, float] = {}
    h, w = rgb.shape[:2]
    points = np.random.default_rng(0).random((BATCH, 2)) * [w, h]
    gen = SamAutomaticMaskGenerator(sam, **amg_kwargs())
    with torch.inference_mode():
        if device == "cuda":  # one warm-up so CUDA start-up is not counted
            gen.predictor.set_image(rgb)
        out["encoder_ms"], _ = timed(synced(lambda: gen.predictor.set_image(rgb)))
        # All masks kept (an upper bound: random weights fail the paper's filters, real ones pass some)
        gen.pred_iou_thresh, gen.stability_score_thresh = 0.0, 0.0
        # The generator's own per-batch path (private API, used only for timing)
        out["batch64_ms"], _ = timed(synced(lambda: gen._process_batch(points, (h, w), [0, 0, w, h], (h, w))))
    return out


def time_superpixels(rgb: np.ndarray) -> dict[str, float]:
    """Median ms of each superpixel method at work_scale 0.5 and 1.0 (after one warm-up)."""
    import cv2

    from kinect_occlusion.sam.superpixel import superpixel_partition

    out = {}
    # OpenCV without the contrib modules (e.g. a GPU image's opencv-python-headless) has no ximgproc
    methods = ("seeds", "slic", "felzenszwalb") if hasattr(cv2, "ximgproc") else ("felzenszwalb",)
    for method in methods:
        for scale in (0.5, 1.0):
            superpixel_partition(rgb, method, work_scale=scale)  # type: ignore[arg-type]
            ms, labels = timed(lambda m=method, s=scale: superpixel_partition(rgb, m, work_scale=s), repeat=3)
            out[f"{method}@{scale}"] = ms
            out[f"{method}@{scale}_segments"] = float(labels.max())
    return out


def adjusted_rand(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labelings of the same pixels (1.0 = identical partitions)."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.bincount(ai * (bi.max() + 1) + bi, minlength=(ai.max() + 1) * (bi.max() + 1))

    def pairs(x: np.ndarray) -> float:
        return float((x.astype(np.float64) * (x - 1) / 2).sum())

    n = pairs(np.array([a.size]))
    sum_ij = pairs(table)
    sum_a = pairs(np.bincount(ai))
    sum_b = pairs(np.bincount(bi))
    expected = sum_a * sum_b / n if n else 0.0
    top = (sum_a + sum_b) / 2
    return 1.0 if top == expected else (sum_ij - expected) / (top - expected)


def agreement(
    rgb: np.ndarray, truth: np.ndarray, prob: np.ndarray, scale: float, side: int
) -> dict[str, float]:
    """Tiny random SAM: guided vs side×side grid partition on the occluded region, at ``scale`` of the frame.

    The generator upsamples every mask to 1024² whatever the model, so even the tiny SAM costs seconds
    per 64 prompts here; a 16×16 grid at quarter size keeps the bench short.
    """
    import torch

    from kinect_occlusion.fuser.vote import binary_probs, soft_vote
    from kinect_occlusion.sam.partition import build_tiny_sam
    from kinect_occlusion.sam.partitioner import SamPartitioner

    size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
    rgb_s = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    prob_s = cv2.resize(prob, size, interpolation=cv2.INTER_LINEAR)
    occ = cv2.resize(truth.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    sam = build_tiny_sam(0)
    # Zero thresholds: random weights yield no masks at the paper's 0.9/0.85
    amg = {"points_per_side": side, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    torch.manual_seed(0)
    grid = SamPartitioner(sam, amg)(rgb_s)
    guided = SamPartitioner(sam, amg, guided=True)(rgb_s, prob=prob_s)
    fused_grid = soft_vote(binary_probs(prob_s), grid.labels)[0] == 1
    fused_guided = soft_vote(binary_probs(prob_s), guided.labels)[0] == 1
    union = (fused_grid | fused_guided).sum()
    return {
        "grid_side": float(side),
        "scale": scale,
        "tiny_grid_prompts": float(grid.decoder_calls),
        "tiny_guided_prompts": float(guided.decoder_calls),
        "tiny_grid_ms": grid.ms,
        "tiny_guided_ms": guided.ms,
        "tiny_grid_segments": float(grid.labels.max()),
        "tiny_guided_segments": float(guided.labels.max()),
        "ari_occluded": adjusted_rand(grid.labels[occ], guided.labels[occ]),
        "fused_iou_grid_vs_guided": float((fused_grid & fused_guided).sum() / union) if union else 1.0,
        "fused_pixel_agreement": float((fused_grid == fused_guided).mean()),
    }


def prompt_counts(prob: np.ndarray, roi: tuple[int, int, int, int]) -> dict[str, int]:
    """Decoder prompts per frame: 40×40, 16×16, guided on the full frame and on the ROI crop."""
    from kinect_occlusion.sam.guided import guided_points

    x, y, w, h = roi
    return {
        "grid40": 1600,
        "grid16": 256,
        "guided": len(guided_points(prob, grid=40)),
        "guided_roi": len(guided_points(prob[y : y + h, x : x + w], grid=40)),
    }


def report(
    sam: dict[str, float], counts: dict[str, int], sp: dict[str, float]
) -> list[tuple[str, float, str]]:
    """Rows (name, ms per frame, note); SAM rows are extrapolated with the keep-all batch time."""
    rows = []
    for key in ("grid40", "grid16", "guided", "guided_roi"):
        n = counts[key]
        ms = sam["encoder_ms"] + math.ceil(n / BATCH) * sam["batch64_ms"]
        rows.append((f"sam vit_b {key} ({n} prompts)", ms, "extrapolated: encoder + batches"))
    for method in ("seeds", "slic", "felzenszwalb"):
        for scale in (0.5, 1.0):
            if f"{method}@{scale}" not in sp:
                continue  # not available in this OpenCV build
            segs = int(sp[f"{method}@{scale}_segments"])
            rows.append(
                (f"superpixel {method} @{scale}", sp[f"{method}@{scale}"], f"measured, {segs} segments")
            )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write all numbers to this JSON file")
    ap.add_argument("--seed", type=int, default=0, help="synthetic scene seed")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument(
        "--agreement-scale", type=float, default=0.25, help="frame scale for the tiny-SAM agreement"
    )
    ap.add_argument("--agreement-grid", type=int, default=16, help="grid side for the tiny-SAM agreement")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device for SAM vit_b timing")
    ap.add_argument("--no-agreement", action="store_true", help="skip the tiny-SAM agreement (CPU, ~1 min)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rgb, truth, prob, roi = scene(args.seed)
    sam = time_sam_vit_b(rgb, args.device)
    counts = prompt_counts(prob, roi)
    sp = time_superpixels(rgb)
    agree = (
        {} if args.no_agreement else agreement(rgb, truth, prob, args.agreement_scale, args.agreement_grid)
    )
    rows = report(sam, counts, sp)
    ref = rows[0][1]
    print(f"1280×720, torch threads {args.threads}, {platform.processor() or platform.machine()}")
    print(
        f"vit_b encoder {sam['encoder_ms']:.0f} ms; one 64-prompt batch {sam['batch64_ms']:.0f} ms "
        "(all masks kept; timing extrapolated below)"
    )
    print(f"{'partitioner':40s} {'ms/frame':>10s} {'vs 40×40':>9s}  note")
    for name, ms, note in rows:
        print(f"{name:40s} {ms:10.0f} {ms / ref:9.4f}  {note}")
    print("agreement, tiny random SAM (NOT a quality figure; random weights):")
    for key, val in agree.items():
        print(f"  {key:28s} {val:.3f}")
    total = time.perf_counter() - t0
    print(f"bench wall time {total:.0f} s")
    if args.json:
        data = {
            "sam": sam,
            "prompts": counts,
            "superpixel": sp,
            "agreement": agree,
            "rows": [
                {"name": n, "ms": ms, "ratio_vs_grid40": ms / ref, "note": note} for n, ms, note in rows
            ],
            "threads": args.threads,
            "wall_s": total,
        }
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
