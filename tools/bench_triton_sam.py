#!/usr/bin/env python3
"""SAM image encoder in-process (torch, onnxruntime) vs through Triton Inference Server: time per image.

    python tools/bench_triton_sam.py [--sam-model tiny|vit_b] [--images 6] [--threads 2] [--json OUT]

Random weights (timing does not depend on them; no quality figure comes from this). In one run:
the encoder of a random SAM is written as a Triton repository (``--backend python``: the same ONNX
through onnxruntime, what the nvidia-pytriton tritonserver can serve), a real tritonserver serves it
on CPU, and the same preprocessed 1280×720 frames (SamPredictor's resize, normalise, pad to
1024×1024) go through the torch encoder, an in-process onnxruntime session of the same ONNX, and
``TritonImageEncoder`` (what ``sam.encoder: triton`` uses). The runtimes take turns A B C C B A
(half the images a turn). Prints median and max ms per image, the ratios to torch, and the largest
difference of Triton's embedding from torch's. Needs the ``triton`` extra and ``make triton-venv``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sam-model", choices=("tiny", "vit_b", "vit_l", "vit_h"), default="tiny")
    p.add_argument("--images", type=int, default=6, help="images per runtime (after one warm-up image)")
    p.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads, all runtimes")
    p.add_argument("--json", help="also write the figures here")
    return p.parse_args(argv)


def random_sam(model_type: str):
    """A SAM of ``model_type`` with random weights, eval mode, on the CPU."""
    import torch
    from segment_anything import sam_model_registry

    from kinect_occlusion.sam.partition import build_tiny_sam

    torch.manual_seed(0)
    return (
        build_tiny_sam(0) if model_type == "tiny" else sam_model_registry[model_type](checkpoint=None).eval()
    )


def preprocessed(sam, n: int) -> list[np.ndarray]:
    """``n`` random 1280×720 frames as SamPredictor feeds the encoder: (1, 3, 1024, 1024) float32."""
    import torch
    from segment_anything.utils.transforms import ResizeLongestSide

    transform, rng = ResizeLongestSide(sam.image_encoder.img_size), np.random.default_rng(0)
    out = []
    for _ in range(n):
        img = transform.apply_image(rng.integers(0, 256, (720, 1280, 3), np.uint8))
        x = torch.as_tensor(img).permute(2, 0, 1).contiguous()[None].float()
        out.append(sam.preprocess(x).numpy())
    return out


def time_turns(runtimes: dict[str, Callable], images: list[np.ndarray]) -> dict[str, list[float]]:
    """Warm each runtime up on one image, then A B C C B A over half the images a turn: ms per image."""
    for encode in runtimes.values():
        encode(images[0])
    half, names = max(1, len(images) // 2), list(runtimes)
    ms: dict[str, list[float]] = {n: [] for n in names}
    for turn, name in enumerate([*names, *reversed(names)]):
        for x in images[:half] if turn < len(names) else images[half:]:
            t0 = time.perf_counter()
            runtimes[name](x)
            ms[name].append((time.perf_counter() - t0) * 1000)
    return ms


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import onnxruntime as ort
    import torch
    import triton_server

    from kinect_occlusion.deeplab.triton_repo import TritonModelSpec
    from kinect_occlusion.sam.triton_encoder import TritonImageEncoder
    from kinect_occlusion.sam.triton_export import INPUT_NAME, embedding_dims, write_encoder_repository

    torch.set_num_threads(args.threads)
    sam = random_sam(args.sam_model)
    images = preprocessed(sam, args.images)
    with tempfile.TemporaryDirectory() as tmp:
        spec = TritonModelSpec(
            name="sam_encoder", backend="python", threads=args.threads, queue_timeout_us=10**8
        )
        model_dir = write_encoder_repository(sam, Path(tmp) / "repo", spec)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        session = ort.InferenceSession(
            str(model_dir / "1" / "model.onnx"), opts, providers=["CPUExecutionProvider"]
        )
        with triton_server.TritonServer(Path(tmp) / "repo", Path(tmp) / "tritonserver.log") as server:
            remote = TritonImageEncoder(
                server.url, "sam_encoder", 600_000, 1024, embedding_dims(sam), args.sam_model
            )
            with torch.inference_mode():
                runtimes = {
                    "torch in-process": lambda x: sam.image_encoder(torch.from_numpy(x)),
                    "onnxruntime in-process": lambda x: session.run(None, {INPUT_NAME: x}),
                    "triton python backend": remote.encode,
                }
                ms = time_turns(runtimes, images)
                diff = float(
                    np.abs(
                        remote.encode(images[0]) - sam.image_encoder(torch.from_numpy(images[0])).numpy()
                    ).max()
                )
            remote.close()
    rows = summarise(ms)
    print_table(rows, diff, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "max_abs_diff": diff, **vars(args)}, indent=2))
    return 0


def summarise(ms: dict[str, list[float]]) -> list[dict]:
    """One row per runtime: median and max ms per image, median relative to the first runtime."""
    base = float(np.median(next(iter(ms.values()))))
    return [
        {
            "runtime": name,
            "images": len(v),
            "median_ms": round(float(np.median(v)), 1),
            "max_ms": round(float(np.max(v)), 1),
            "vs_torch": round(float(np.median(v)) / base, 2),
        }
        for name, v in ms.items()
    ]


def print_table(rows: list[dict], diff: float, args: argparse.Namespace) -> None:
    print(
        f"\nSAM {args.sam_model} image encoder (random weights), 1024×1024 input from 1280×720 frames, ",
        end="",
    )
    print(f"{args.threads} threads; Triton embedding vs torch: max |diff| {diff:.2e}")
    print("\n| runtime | images | median ms/image | max ms/image | median vs torch |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        cells = [r["runtime"], r["images"], r["median_ms"], r["max_ms"], f"{r['vs_torch']:.2f}×"]
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
