#!/usr/bin/env python3
"""DeepLabV3+ coarse branch on this CPU: ms/frame per backbone and runtime, ratios against eager fp32.

    python tools/bench_deeplab.py [--size 512] [--repeats 5] [--threads 2] [--no-compile] [--no-onnx]
                                  [--backbones resnet50 resnet18 mobilenet_v3_large] [--heads standard]
                                  [--json OUT.json]

For each model (random weights: timing does not depend on them) the runtimes are measured round-robin
in the same process, so background load hits them alike; each row reports the median of ``--repeats``
timed calls of the predictor's forward pass (normalise → network → softmax → numpy) on one
``size``×``size`` letterbox. Also reported: parameter count, checkpoint size on disk (fp32 and fp16
weights), torch.compile start-up time, and the pre/post-processing cost for a 1280×720 frame.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("bench_deeplab")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbones", nargs="+", default=["resnet50", "resnet18", "mobilenet_v3_large"])
    p.add_argument("--heads", nargs="+", default=["standard"], help="standard and/or lite")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=5, help="timed calls per runtime (median reported)")
    p.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (about 1 min per model)")
    p.add_argument("--no-onnx", action="store_true", help="skip onnxruntime")
    p.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="cuda: fp16 channels-last, no ONNX"
    )
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    return p.parse_args(argv)


def checkpoint_sizes(model, size: int) -> tuple[float, float]:
    """Checkpoint size on disk in MB with fp32 and with fp16 weights."""
    import copy

    from kinect_occlusion.deeplab.model import save_checkpoint

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for half in (False, True):
            m = copy.deepcopy(model).half() if half else model
            path = save_checkpoint(Path(tmp) / "m.pt", m, input_size=size)
            out.append(path.stat().st_size / 1e6)
    return out[0], out[1]


def make_runtimes(loaded, args: argparse.Namespace) -> tuple[dict[str, Callable], dict[str, float]]:
    """name → forward(canvas) for each runtime, and the start-up seconds of each."""
    import copy

    from kinect_occlusion.deeplab.predict import CoarsePredictor

    canvas = np.zeros((args.size, args.size, 3), np.uint8)
    runtimes: dict[str, Callable] = {}
    startup: dict[str, float] = {}
    variants = [("eager fp32", {}), ("channels_last", {"channels_last": True})]
    if args.device == "cuda":
        variants.append(("fp16 channels_last", {"channels_last": True, "half": True}))
    if not args.no_compile:
        variants.append(("torch.compile", {"compile": True, "half": args.device == "cuda"}))
    for name, kw in variants:
        t0 = time.perf_counter()
        pred = CoarsePredictor(copy.deepcopy(loaded), device=args.device, **kw)
        pred.forward(canvas)  # warm-up (and compilation)
        startup[name], runtimes[name] = time.perf_counter() - t0, pred.forward
    if not args.no_onnx and args.device == "cpu":
        from kinect_occlusion.deeplab.onnx_export import OnnxCoarsePredictor

        t0 = time.perf_counter()
        onnx = OnnxCoarsePredictor(copy.deepcopy(loaded), threads=args.threads)
        onnx.forward(canvas)
        startup["onnxruntime"], runtimes["onnxruntime"] = time.perf_counter() - t0, onnx.forward
    return runtimes, startup


def time_round_robin(runtimes: dict[str, Callable], size: int, repeats: int) -> dict[str, float]:
    """Median ms per call for each runtime, interleaving the runtimes call by call."""
    rng = np.random.default_rng(0)
    samples: dict[str, list[float]] = {name: [] for name in runtimes}
    for _ in range(repeats):
        canvas = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        for name, fn in runtimes.items():
            t0 = time.perf_counter()
            fn(canvas)
            samples[name].append((time.perf_counter() - t0) * 1000)
    return {name: statistics.median(v) for name, v in samples.items()}


def pre_post_ms(size: int, repeats: int = 20) -> float:
    """Median ms of crop + letterbox + un-letterbox + paste for a 1280×720 frame (no network)."""
    from kinect_occlusion.deeplab.predict import postprocess, preprocess

    rgb = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    prob = np.random.default_rng(1).random((size, size), dtype=np.float32)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _, t, box = preprocess(rgb, None, size)
        postprocess(prob, t, box, (720, 1280))
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def bench_model(backbone: str, head: str, args: argparse.Namespace) -> dict:
    """All measurements for one backbone + head."""
    import torch

    from kinect_occlusion.deeplab.model import count_parameters, untrained

    torch.manual_seed(0)
    loaded = untrained(backbone, head=head, input_size=args.size)
    loaded.model.eval()
    mb32, mb16 = checkpoint_sizes(loaded.model, args.size)
    log.info(
        "%s/%s: %d parameters; warming up %s",
        backbone,
        head,
        count_parameters(loaded.model),
        "(torch.compile takes a while)" if not args.no_compile else "",
    )
    runtimes, startup = make_runtimes(loaded, args)
    ms = time_round_robin(runtimes, args.size, args.repeats)
    base = ms["eager fp32"]
    return {
        "backbone": backbone,
        "head": head,
        "params": count_parameters(loaded.model),
        "checkpoint_mb_fp32": round(mb32, 1),
        "checkpoint_mb_fp16": round(mb16, 1),
        "ms": {k: round(v, 1) for k, v in ms.items()},
        "speedup_vs_eager": {k: round(base / v, 2) for k, v in ms.items()},
        "startup_s": {k: round(v, 1) for k, v in startup.items()},
    }


def format_table(rows: list[dict], meta: dict) -> str:
    """A plain-text table: one line per model and runtime."""
    lines = [
        f"DeepLabV3+ at {meta['size']}×{meta['size']}, batch 1, {meta['threads']} threads, "
        f"torch {meta['torch']}, median of {meta['repeats']} (ratio = eager fp32 ms / runtime ms)",
        f"{'model':<28}{'params':>8}{'ckpt MB':>14}  {'runtime':<15}{'ms/frame':>9}{'ratio':>7}"
        f"{'start s':>9}",
    ]
    for r in rows:
        name = f"{r['backbone']}/{r['head']}"
        for i, (rt, v) in enumerate(r["ms"].items()):
            left = (
                (
                    f"{name:<28}{r['params'] / 1e6:>7.1f}M{r['checkpoint_mb_fp32']:>7.1f}/"
                    f"{r['checkpoint_mb_fp16']:<6.1f}"
                )
                if i == 0
                else " " * 50
            )
            lines.append(
                f"{left}  {rt:<15}{v:>9.1f}{r['speedup_vs_eager'][rt]:>6.2f}×{r['startup_s'][rt]:>9.1f}"
            )
    lines.append(
        f"pre+post-processing (1280×720 frame → {meta['size']}² letterbox → back): "
        f"{meta['pre_post_ms']:.1f} ms;  ckpt MB = fp32/fp16 weights"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    rows = [bench_model(b, h, args) for b in args.backbones for h in args.heads]
    meta = {
        "size": args.size,
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "pre_post_ms": round(pre_post_ms(args.size), 2),
    }
    print(format_table(rows, meta))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
        log.info("wrote %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
