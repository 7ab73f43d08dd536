#!/usr/bin/env python3
"""AMG per frame, ours (sam.amg: fast) vs segment-anything's generator, at controlled mask survival.

    python tools/bench_amg.py --device cpu --side 16 [--repeats 1] [--json OUT]
    python tools/bench_amg.py --device cuda --side 40 --repeats 3 --json out/gpu/amg.json
    python tools/bench_amg.py --side 8 --nms 1.0 --arithmetic factored   # + sam/factored.py's decoder

One 1280×720 synthetic ICU frame, random weights (timing does not depend on them). Both generators
see the same image embedding: the encoder runs once and is timed apart (``encoder_ms``), then each
row times everything after it (decoder batches, filters, NMS, small-region clean-up with the
paper's ``min_mask_region_area`` 5, label painting), reference and ours interleaved. A frame costs
``encoder_ms`` + the row's ms. Survival is controlled with the predicted-IoU threshold picked from
a probe run at zero thresholds: ``none`` (above every mask), ``~N`` (the N-th best), ``all`` (0),
plus the paper's filters (0.9 / 0.85). ``identical`` says whether both label maps are equal.
``speed-up`` is reference / ours after the encoder, ``frame`` the same for a whole frame (the
encoder's ms added to both); ``CPU s``: process CPU time (all threads) of each row.

``--arithmetic factored`` adds a third generator to every row, interleaved with the other two: ours
with ``decoder_arithmetic="factored"`` (the transformer re-associated, not bit-exact), printed on a
second line with its ms, its speed-up against ours (exact) and the reference in the same process,
and ``agree``: the share of pixels whose label equals the reference's.
"""

from __future__ import annotations

import argparse
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


def load_sam(model: str, device: str) -> Any:
    """Random-weight SAM ``model`` (vit_b/vit_l/vit_h, or tiny) on ``device``, eval mode."""
    import torch
    from segment_anything import sam_model_registry

    from kinect_occlusion.sam.partition import build_tiny_sam

    torch.manual_seed(0)
    sam = build_tiny_sam(0) if model == "tiny" else sam_model_registry[model](checkpoint=None)
    return sam.eval().to(device)


def cache_embedding(generator: Any, state: dict[str, Any]) -> None:
    """Make ``generator.predictor.set_image`` restore a precomputed embedding instead of encoding."""
    predictor = generator.predictor

    def set_image(image: np.ndarray, image_format: str = "RGB") -> None:
        for key, value in state.items():
            setattr(predictor, key, value)

    predictor.set_image = set_image


def embed(sam: Any, rgb: np.ndarray, sync: Callable[[], None]) -> tuple[dict[str, Any], float]:
    """The predictor state after ``set_image(rgb)`` and the encoder's ms."""
    import torch
    from segment_anything import SamPredictor

    predictor = SamPredictor(sam)
    with torch.inference_mode():
        predictor.set_image(rgb)  # warm-up
        sync()
        t0 = time.perf_counter()
        predictor.set_image(rgb)
        sync()
    keys = ("features", "original_size", "input_size", "is_image_set")
    return {k: getattr(predictor, k) for k in keys}, (time.perf_counter() - t0) * 1000


def candidate_ious(sam: Any, state: dict[str, Any], rgb: np.ndarray, side: int, nms: float) -> np.ndarray:
    """Predicted IoUs of every mask our generator keeps at zero thresholds (``levels`` picks from them)."""
    import torch

    from kinect_occlusion.sam.amg import FastMaskGenerator

    probe = FastMaskGenerator(
        sam, points_per_side=side, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=nms
    )
    probe.min_mask_region_area = 5
    cache_embedding(probe, state)
    with torch.inference_mode():
        return probe.generate_kept(rgb).iou_preds.cpu().numpy()


def levels(probe_ious: np.ndarray, counts: list[int]) -> dict[str, dict[str, float]]:
    """Filter settings: none / the N best of the probe's kept masks / all, and the paper's filters."""
    ious = np.sort(probe_ious)[::-1]
    out = {"none": {"pred_iou_thresh": 1e9}}  # predicted IoUs are unbounded with random weights
    for n in counts:
        if 0 < n < len(ious):
            out[f"~{n}"] = {"pred_iou_thresh": float(ious[n - 1]) - 1e-6}
    out["all"] = {"pred_iou_thresh": 0.0}
    out = {k: {**v, "stability_score_thresh": 0.0} for k, v in out.items()}
    out["paper"] = {"pred_iou_thresh": 0.9, "stability_score_thresh": 0.85}
    return out


def generators(
    sam: Any,
    side: int,
    filters: dict[str, float],
    state: dict[str, Any],
    nms: float = 0.7,
    arithmetic: str = "exact",
) -> dict[str, Callable]:
    """name → call(rgb) returning (labels, scores), both sharing the cached embedding."""
    from segment_anything import SamAutomaticMaskGenerator

    from kinect_occlusion.sam.amg import FastMaskGenerator
    from kinect_occlusion.sam.partition import amg_kwargs, sam_partition

    kw = amg_kwargs(points_per_side=side, box_nms_thresh=nms, **filters)
    kw.pop("points_per_batch")
    ref = SamAutomaticMaskGenerator(sam, points_per_batch=64, **kw)
    fast = FastMaskGenerator(sam, points_per_batch="auto", **kw)
    for gen in (ref, fast):
        cache_embedding(gen, state)
    calls = {"reference": lambda rgb: sam_partition(ref, rgb), "ours": fast.labels}
    if arithmetic == "factored":
        factored = FastMaskGenerator(sam, points_per_batch="auto", decoder_arithmetic="factored", **kw)
        cache_embedding(factored, state)
        calls["factored"] = factored.labels
    return calls


def time_level(calls: dict[str, Callable], rgb: np.ndarray, repeats: int, sync: Callable) -> dict[str, Any]:
    """Median ms of each call (interleaved), segments, and whether the label maps are identical."""
    import torch

    samples: dict[str, list[float]] = {k: [] for k in calls}
    cpu: dict[str, list[float]] = {k: [] for k in calls}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for name, call in calls.items():
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                results[name] = call(rgb)
            sync()
            samples[name].append((time.perf_counter() - t0) * 1000)
            cpu[name].append((time.process_time() - c0) * 1000)
    ref, ours = results["reference"], results["ours"]
    identical = bool(np.array_equal(ref[0], ours[0]) and np.array_equal(ref[1], ours[1]))
    ms = {k: statistics.median(v) for k, v in samples.items()}
    # Process CPU time (all threads): steadier than wall time on a shared host
    cpu_ms = {f"{k}_cpu_ms": statistics.median(v) for k, v in cpu.items()}
    row = {**{f"{k}_ms": v for k, v in ms.items()}, **cpu_ms}
    if "factored" in results:  # not bit-exact: the share of pixels labelled as the reference does
        factored = results["factored"][0]
        row["factored_agreement"] = float((factored == ref[0]).mean())
        row["factored_segments"] = int(factored.max())
    return {**row, "segments": int(ours[0].max()), "identical": identical}


def print_factored(row: dict[str, Any]) -> None:
    """The factored decoder's line under a row: ms, speed-ups vs ours (exact) and the reference."""
    ms = row["factored_ms"]
    print(
        f"{'factored':>9s}{row['factored_segments']:9d}{'':>14s}{ms:10.0f}"
        f"{row['ours_ms'] / ms:9.2f}× vs ours, {row['reference_ms'] / ms:.2f}× vs reference;"
        f" CPU s {row['factored_cpu_ms'] / 1000:.1f}; agree {100 * row['factored_agreement']:.3f} %",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--model", default="vit_b", choices=["vit_b", "vit_l", "vit_h", "tiny"])
    ap.add_argument("--side", type=int, default=40, help="grid side (paper: 40)")
    ap.add_argument("--repeats", type=int, default=1, help="timed frames per row (median)")
    ap.add_argument("--counts", type=int, nargs="*", default=[100], help="~N surviving masks rows")
    ap.add_argument("--levels", nargs="*", default=None, help="run only these rows (none ~100 all paper)")
    ap.add_argument(
        "--nms",
        type=float,
        default=0.7,
        help="box NMS threshold (SAM's 0.7; random weights give near-identical masks that NMS merges: "
        "1.0 keeps them, so that ~N and all mean N and all candidates)",
    )
    ap.add_argument(
        "--arithmetic",
        default="exact",
        choices=["exact", "factored"],
        help="factored: also time ours with the factored decoder (sam.decoder_arithmetic)",
    )
    ap.add_argument("--json", type=Path, help="write all numbers here")
    args = ap.parse_args(argv)
    import torch

    from kinect_occlusion.sources.synthetic import render_scene

    t_start = time.perf_counter()
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    rgb = render_scene(0).rgb
    sam = load_sam(args.model, args.device)
    state, enc_ms = embed(sam, rgb, sync)
    print(
        f"SAM {args.model}, random weights, {args.side}×{args.side} grid, NMS {args.nms}, 1280×720, "
        f"{args.device}"
    )
    print(f"encoder (set_image) {enc_ms:.0f} ms, once per frame for both generators", flush=True)
    probe_ious = candidate_ious(sam, state, rgb, args.side, args.nms)
    rows = {}
    print(
        f"{'survival':>9s}{'segments':>9s}{'reference ms':>14s}{'ours ms':>10s}{'speed-up':>10s}"
        f"{'frame':>8s}{'CPU s ref/ours':>16s}  identical"
    )
    for name, filters in levels(probe_ious, args.counts).items():
        if args.levels and name not in args.levels:
            continue
        calls = generators(sam, args.side, filters, state, args.nms, args.arithmetic)
        row = time_level(calls, rgb, args.repeats, sync)
        rows[name] = {**row, **filters}
        speed = row["reference_ms"] / row["ours_ms"]
        # speed-up: after the shared encoder; frame: the whole frame, encoder included
        frame = (enc_ms + row["reference_ms"]) / (enc_ms + row["ours_ms"])
        print(
            f"{name:>9s}{row['segments']:9d}{row['reference_ms']:14.0f}{row['ours_ms']:10.0f}"
            f"{speed:9.1f}×{frame:7.1f}×"
            f"{row['reference_cpu_ms'] / 1000:9.1f} /{row['ours_cpu_ms'] / 1000:5.1f}"
            f"  {row['identical']}",
            flush=True,
        )
        if "factored_ms" in row:
            print_factored(row)
    print(f"bench wall time {time.perf_counter() - t_start:.0f} s")
    if args.json:
        gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
        data = {"device": gpu, "model": args.model, "side": args.side, "nms": args.nms, "encoder_ms": enc_ms}
        data["arithmetic"] = args.arithmetic
        data["rows"] = rows
        data["torch"] = torch.__version__
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
