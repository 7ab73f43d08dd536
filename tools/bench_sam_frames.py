#!/usr/bin/env python3
"""Whole SAM partitions per frame, measured (not extrapolated): upstream generator vs our fast paths.

    python tools/bench_sam_frames.py --device cuda [--model vit_b] [--repeats 3] [--json OUT]

Every row partitions the same 1280×720 synthetic ICU scene end to end (encoder, all decoder
batches, mask post-processing, NMS, small-region clean-up, label painting). The baseline is
segment-anything's own ``SamAutomaticMaskGenerator.generate`` at the paper's 40×40 grid in fp32;
each other row adds one of our changes and prints ms/frame and the ratio to that baseline, measured
round-robin in this process. Weights are random (timing does not depend on them), and random masks
fail the paper's filters: ``--filters paper`` therefore keeps (nearly) no mask and gives the GPU-bound
lower bound of a frame, ``--filters keep-all`` (thresholds 0, the default) keeps every noise-like
mask and gives an upper bound of the per-mask CPU post-processing; a real frame lies between.
``--model tiny --side 6`` checks the script on a CPU in seconds; on a CPU vit_b takes minutes per frame.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

FILTERS: dict[str, dict[str, Any]] = {
    # random weights fail the paper's filters, so "paper" drops (nearly) every mask before the
    # per-mask CPU post-processing: a lower bound; "keep-all" keeps all 1600: an upper bound
    "paper": {"pred_iou_thresh": 0.9, "stability_score_thresh": 0.85},
    "keep-all": {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0},
}


def load_sam(model: str, device: str) -> Any:
    """Random-weight SAM of ``model`` (vit_b/vit_l/vit_h, or tiny) on ``device``."""
    import torch
    from segment_anything import sam_model_registry

    from kinect_occlusion.sam.partition import build_tiny_sam

    torch.manual_seed(0)
    sam = build_tiny_sam(0) if model == "tiny" else sam_model_registry[model](checkpoint=None)
    return sam.eval().to(device)


def variants(
    sam: Any, prob: np.ndarray, roi: tuple[int, int, int, int], side: int = 40, filters: str = "keep-all"
) -> list[tuple[str, Callable]]:
    """(name, build) pairs; build() returns a zero-argument call that partitions the scene's frame."""
    from segment_anything import SamAutomaticMaskGenerator

    from kinect_occlusion.sam.partition import amg_kwargs
    from kinect_occlusion.sam.partitioner import SamPartitioner

    def ours(name: str, call_kw: dict, **kw: Any) -> tuple[str, Callable]:
        amg = {**FILTERS[filters], "points_per_side": side, **kw.pop("amg", {})}

        def build() -> Callable:
            part = SamPartitioner(copy.deepcopy(sam), amg, **kw)
            return lambda rgb: part(rgb, **call_kw)

        return name, build

    def reference() -> Callable:
        gen = SamAutomaticMaskGenerator(
            copy.deepcopy(sam), **amg_kwargs(**FILTERS[filters], points_per_side=side)
        )
        return lambda rgb: gen.generate(rgb)

    g = f"{side}×{side}"
    fast = {"sdpa": True, "half": True}
    big = {"points_per_batch": 256}
    return [
        (f"upstream generate, {g}, fp32 (baseline)", reference),
        ours(f"ours {g} (same path + label painting)", {}),
        ours(f"ours {g} + SDPA", {}, sdpa=True),
        ours(f"ours {g} + SDPA + bf16 encoder", {}, **fast),
        ours(f"ours {g} + SDPA + bf16, 256 prompts/batch", {}, amg=big, **fast),
        # sam.decoder_arithmetic: factored (sam/factored.py): fewer decoder MACs, not bit-exact
        ours(
            f"ours {g} + SDPA + bf16, 256/batch, factored decoder",
            {},
            amg={**big, "decoder_arithmetic": "factored"},
            **fast,
        ),
        ours(f"ours {g} on the ROI crop, SDPA + bf16, 256/batch", {"roi": roi}, amg=big, **fast),
        ours(
            "ours guided on the ROI, SDPA + bf16, 256/batch",
            {"roi": roi, "prob": prob},
            amg=big,
            guided=True,
            **fast,
        ),
        ours(
            "ours guided on the ROI, work_size 512, SDPA + bf16, 256/batch",
            {"roi": roi, "prob": prob},
            amg=big,
            guided=True,
            work_size=512,
            **fast,
        ),
    ]


def synced(device: str) -> Callable[[], None]:
    """A function that waits for the device's queued work (no-op on the CPU)."""
    import torch

    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def run_variant(build: Callable, rgb: np.ndarray, device: str) -> tuple[Callable, float, Any]:
    """Build and warm up one variant; (call, warm-up ms, last result)."""
    import torch

    sync = synced(device)
    call = build()
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = call(rgb)
    sync()
    return call, (time.perf_counter() - t0) * 1000, out


def describe(out: Any, shape: tuple[int, int]) -> dict[str, float]:
    """Visible segments (and decoder prompts) of a variant's result: generator masks or PartitionResult."""
    if isinstance(out, list):  # upstream generator: paint its masks the way our partition does
        from kinect_occlusion.sam.partition import masks_to_labels

        return {"segments": float(masks_to_labels(out, shape)[0].max())}
    return {"segments": float(out.labels.max()), "decoder_prompts": float(out.decoder_calls)}


def time_round_robin(
    calls: dict[str, Callable], rgb: np.ndarray, device: str, repeats: int
) -> dict[str, float]:
    """Median ms per frame of each call, interleaved call by call."""
    import torch

    sync = synced(device)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            sync()
            t0 = time.perf_counter()
            with torch.inference_mode():
                call(rgb)
            sync()
            samples[name].append((time.perf_counter() - t0) * 1000)
    return {name: statistics.median(v) for name, v in samples.items()}


def encoder_ms(sam: Any, rgb: np.ndarray, device: str, repeats: int) -> dict[str, float]:
    """Image-encoder ms (set_image) for fp32, SDPA and, on CUDA, SDPA + bf16; median of ``repeats``."""
    import torch
    from segment_anything import SamPredictor

    from kinect_occlusion.sam.partition import AutocastEncoder
    from kinect_occlusion.sam.sdpa import enable_sdpa

    sync = synced(device)
    models = {"fp32": copy.deepcopy(sam), "sdpa": copy.deepcopy(sam)}
    enable_sdpa(models["sdpa"])
    if device == "cuda":  # autocast to bf16 only exists on CUDA here
        models["sdpa + bf16"] = copy.deepcopy(models["sdpa"])
        models["sdpa + bf16"].image_encoder = AutocastEncoder(
            models["sdpa + bf16"].image_encoder, torch.bfloat16
        )
    out = {}
    for name, model in models.items():
        predictor, times = SamPredictor(model), []
        with torch.inference_mode():
            for i in range(repeats + 1):
                sync()
                t0 = time.perf_counter()
                predictor.set_image(rgb)
                sync()
                if i:
                    times.append((time.perf_counter() - t0) * 1000)
        out[name] = statistics.median(times)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    ap.add_argument("--model", default="vit_b", choices=["vit_b", "vit_l", "vit_h", "tiny"])
    ap.add_argument("--repeats", type=int, default=3, help="timed frames per variant (median reported)")
    ap.add_argument("--seed", type=int, default=0, help="synthetic scene seed")
    ap.add_argument(
        "--side", type=int, default=40, help="grid side (paper: 40; smaller only to check the script)"
    )
    ap.add_argument(
        "--filters", choices=sorted(FILTERS), default="keep-all", help="mask filters (see FILTERS)"
    )
    ap.add_argument(
        "--only",
        nargs="+",
        default=None,
        help="run only variants whose name holds one of these words (ratios: vs the first one run)",
    )
    ap.add_argument("--json", type=Path, help="write all numbers here")
    args = ap.parse_args(argv)
    import torch
    from bench_partition import scene

    t_start = time.perf_counter()
    rgb, _, prob, roi = scene(args.seed)
    sam = load_sam(args.model, args.device)
    enc = encoder_ms(sam, rgb, args.device, args.repeats)
    calls, rows = {}, {}
    for name, build in variants(sam, prob, roi, args.side, args.filters):
        if args.only and not any(word in name for word in args.only):
            continue
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        calls[name], warm, out = run_variant(build, rgb, args.device)
        peak = torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else 0.0
        rows[name] = {"warmup_ms": warm, "peak_mib": peak, **describe(out, rgb.shape[:2])}
        print(f"  built {name}: warm-up {warm:.0f} ms", flush=True)
    ms = time_round_robin(calls, rgb, args.device, args.repeats)
    base = next(iter(ms.values()))
    name_dev = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(
        f"SAM {args.model} (random weights, filters {args.filters}) on {name_dev}, 1280×720, "
        f"torch {torch.__version__}"
    )
    print("encoder (set_image) ms: " + ", ".join(f"{k} {v:.1f}" for k, v in enc.items()))
    print(f"{'partition':66s}{'ms/frame':>10s}{'ratio':>8s}{'segments':>10s}{'prompts':>9s}{'peak MiB':>10s}")
    for name, value in ms.items():
        r = rows[name]
        prompts = f"{r.get('decoder_prompts', args.side**2):.0f}"
        print(
            f"{name:66s}{value:10.0f}{base / value:7.2f}×{r['segments']:10.0f}{prompts:>9s}"
            f"{r['peak_mib']:10.0f}"
        )
    wall = time.perf_counter() - t_start
    print(f"bench wall time {wall:.0f} s")
    if args.json:
        data = {
            "device": name_dev,
            "model": args.model,
            "filters": args.filters,
            "torch": torch.__version__,
            "repeats": args.repeats,
            "encoder_ms": enc,
            "rows": [{"name": n, "ms": v, "ratio_vs_baseline": base / v, **rows[n]} for n, v in ms.items()],
            "wall_s": wall,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
