#!/usr/bin/env python3
"""Where an AMG frame's time goes: ours (sam.amg: fast) vs segment-anything's generator, by stage.

    python tools/profile_amg.py --side 8 --nms 1.0 [--model vit_b] [--levels none ~100 all]
    python tools/profile_amg.py --decoder 64    # torch.profiler ops of one 64-prompt decoder call
    python tools/profile_amg.py --side 8 --arithmetic factored   # + ours with sam/factored.py's decoder

The setup of tools/bench_amg.py (one 1280×720 synthetic frame, random weights, the encoder run
once and shared, survival controlled by the predicted-IoU threshold), each row profiled once with
cProfile on process CPU time (all threads; steadier than wall time on a shared host). A stage is
the cumulative time of the functions named in ``STAGES``; ``other`` is the rest of the row.
``--arithmetic factored`` adds a third row per level, ours with ``decoder_arithmetic="factored"``
(not bit-exact), and its decoder stage's ratio to ours (exact) in the same process.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

# stage → (file name, function name) pairs whose cumulative times add up (none nests in another)
STAGES: dict[str, list[tuple[str, str]]] = {
    "decoder": [
        ("mask_decoder.py", "forward"),
        ("decoder.py", "decode_tokens"),
        ("decoder.py", "decode_masks"),
    ],
    "prompts": [("prompt_encoder.py", "forward")],
    "upsample": [("sam.py", "postprocess_masks"), ("amg.py", "upsample_logits")],
    "stability": [("amg.py", "calculate_stability_score")],
    "boxes": [("amg.py", "batched_mask_to_box"), ("amg.py", "is_box_near_crop_edge")],
    "rle+cat": [("amg.py", "mask_to_rle_pytorch"), ("amg.py", "cat"), ("amg.py", "rle_to_mask")],
    "nms": [("boxes.py", "batched_nms")],
    "clean-up": [
        ("automatic_mask_generator.py", "postprocess_small_regions"),
        ("amg.py", "remove_small_regions_kept"),
    ],
    "paint": [("partition.py", "masks_to_labels"), ("amg.py", "paint_labels")],
}


def stage_seconds(stats: pstats.Stats, total: float) -> dict[str, float]:
    """Seconds per stage (cumulative time of its functions), ``other`` and ``total``."""
    raw: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    out = dict.fromkeys(STAGES, 0.0)
    for (path, _, func), (_, _, _, cum, _) in raw.items():
        for stage, names in STAGES.items():
            if (Path(path).name, func) in names:
                out[stage] += cum
    # NMS and RLEs inside the clean-up are counted there, the rest under nms and rle+cat
    nested = clean_up_nested(stats)
    out["nms"] -= nested["nms"]
    out["rle+cat"] -= nested["rle+cat"]
    out["other"] = total - sum(out.values())
    out["total"] = total
    return out


# functions that the clean-up also calls, and the stage they count under elsewhere
NESTED = {
    ("boxes.py", "batched_nms"): "nms",
    ("amg.py", "rle_to_mask"): "rle+cat",
    ("amg.py", "mask_to_rle_pytorch"): "rle+cat",
}


def clean_up_nested(stats: pstats.Stats) -> dict[str, float]:
    """Time of the ``NESTED`` functions called from the clean-up functions (counted there)."""
    raw: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    nested = {"nms": 0.0, "rle+cat": 0.0}
    for (path, _, func), (_, _, _, _, callers) in raw.items():
        stage = NESTED.get((Path(path).name, func))
        if stage is None:
            continue
        for (cpath, _, cfunc), (_, _, _, ccum) in callers.items():
            if (Path(cpath).name, cfunc) in STAGES["clean-up"]:
                nested[stage] += ccum
    return nested


def profile_call(call: Callable[[Any], Any], rgb: Any) -> tuple[dict[str, float], Any]:
    """One call of ``call(rgb)`` under cProfile on process time: seconds per stage, its result."""
    import torch

    prof = cProfile.Profile(time.process_time)
    c0 = time.process_time()
    with torch.inference_mode():
        result = prof.runcall(call, rgb)
    total = time.process_time() - c0
    return stage_seconds(pstats.Stats(prof), total), result


def profile_decoder(sam: Any, batch: int, arithmetic: str = "exact") -> None:
    """torch.profiler's top CPU ops of one ``batch``-prompt decoder call: MaskDecoder vs decode_points
    (and decode_points with the factored transformer when ``arithmetic`` is ``factored``)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from kinect_occlusion.sam.decoder import decode_masks, decode_points, decode_tokens

    gen = torch.Generator().manual_seed(0)
    prompts = sam.prompt_encoder
    embedding = torch.randn(1, prompts.embed_dim, *prompts.image_embedding_size, generator=gen)
    points = torch.rand(batch, 1, 2, generator=gen) * sam.image_encoder.img_size
    with torch.inference_mode():
        sparse, dense = prompts(
            points=(points, torch.ones(batch, 1, dtype=torch.int)), boxes=None, masks=None
        )
        pe = prompts.get_dense_pe()
        calls = {
            "MaskDecoder (reference)": lambda: sam.mask_decoder(embedding, pe, sparse, dense, True),
            "decode_points (ours)": lambda: decode_points(sam.mask_decoder, embedding, pe, sparse, dense),
        }
        if arithmetic == "factored":
            calls["decode_tokens + decode_masks, factored"] = lambda: decode_masks(
                sam.mask_decoder, decode_tokens(sam.mask_decoder, embedding, pe, sparse, dense, "factored")
            )
        for name, call in calls.items():
            call()  # warm-up
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                call()
            print(f"{name}, {batch} prompts")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vit_b", choices=["vit_b", "vit_l", "vit_h", "tiny"])
    ap.add_argument("--side", type=int, default=8, help="grid side (paper: 40)")
    ap.add_argument("--nms", type=float, default=1.0, help="box NMS threshold (1.0: survival = IoU filter)")
    ap.add_argument("--counts", type=int, nargs="*", default=[100], help="~N surviving masks rows")
    ap.add_argument("--levels", nargs="*", default=["none", "~100", "all"], help="rows to profile")
    ap.add_argument("--decoder", type=int, metavar="B", help="only profile one B-prompt decoder call by op")
    ap.add_argument("--arithmetic", default="exact", choices=["exact", "factored"], help="factored: + a row")
    args = ap.parse_args(argv)
    import numpy as np
    from bench_amg import candidate_ious, embed, generators, levels, load_sam

    from kinect_occlusion.sources.synthetic import render_scene

    sam = load_sam(args.model, "cpu")
    if args.decoder:
        profile_decoder(sam, args.decoder, args.arithmetic)
        return 0
    rgb = render_scene(0).rgb
    c0 = time.process_time()
    state, enc_ms = embed(sam, rgb, lambda: None)
    enc_cpu = (time.process_time() - c0) / 2  # embed encodes twice (warm-up + timed)
    print(f"SAM {args.model}, random weights, {args.side}×{args.side} grid, NMS {args.nms}, 1280×720, cpu")
    print(f"encoder (set_image): {enc_ms / 1000:.1f} s wall, ~{enc_cpu:.1f} s CPU, shared by both")
    probe_ious = candidate_ious(sam, state, rgb, args.side, args.nms)
    names = [*STAGES, "other", "total"]
    print("CPU seconds per stage (process time, all threads)")
    print(f"{'row':>16s}" + "".join(f"{n:>10s}" for n in names))
    for level, filters in levels(probe_ious, args.counts).items():
        if level not in args.levels:
            continue
        calls = generators(sam, args.side, filters, state, args.nms, args.arithmetic)
        labels, decoder = [], {}
        for name, call in calls.items():
            secs, (label_map, _) = profile_call(call, rgb)
            labels.append(label_map)
            decoder[name] = secs["decoder"]
            label = f"{level} {name}"
            print(f"{label:>16s}" + "".join(f"{secs[n]:10.2f}" for n in names), flush=True)
        print(f"{'':>16s}  segments {int(labels[1].max())}, identical {np.array_equal(*labels[:2])}")
        if "factored" in decoder:
            agree = float((labels[2] == labels[0]).mean())
            print(
                f"{'':>16s}  factored decoder stage {decoder['ours'] / decoder['factored']:.2f}× ours' "
                f"({decoder['reference'] / decoder['factored']:.2f}× the reference's); "
                f"labels agree with the reference on {100 * agree:.3f} % of pixels"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
