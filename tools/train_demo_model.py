#!/usr/bin/env python3
"""Train the small demo coarse model on synthetic scenes and report coarse vs fused test metrics.

    python tools/train_demo_model.py [--out recordings/demo_model.pt] [--n-images 160] [--epochs 60]
                                     [--size 256] [--backbone mobilenet_v3_large] [--head lite] [--seed 0]

Steps: render a synthetic data set (tools/make_synthetic_dataset.py) into a temporary folder, run
``kinect_occlusion.training.train`` on it (recipe as ``kinect-occlusion train``, with the cosine period
set to the number of epochs, BatchNorm momentum 0.1, no early stop), store ``best.pt`` with fp16
weights at ``--out`` (the loader casts them back to fp32), then evaluate the test split, coarse vs fused
over superpixels. Defaults (160 images, 60 epochs, input 256, batch 4, lite head) took 17.5 min on 2
CPU cores shared with other work (the bundled recordings/demo_model.pt, 7.7 MB).
Deterministic by seed on a given machine and thread count. The model has only seen SYNTHETIC scenes.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _dataset_writer():
    """``write_dataset`` from tools/make_synthetic_dataset.py (tools/ is not a package)."""
    path = ROOT / "tools" / "make_synthetic_dataset.py"
    spec = importlib.util.spec_from_file_location("make_synthetic_dataset", path)
    if spec is None or spec.loader is None:
        raise SystemExit("tools/make_synthetic_dataset.py is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_dataset


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "recordings" / "demo_model.pt")
    p.add_argument("--n-images", type=int, default=160, help="synthetic images (80/10/10 split)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--size", type=int, default=256, help="network input (letterbox) size")
    p.add_argument("--backbone", default="mobilenet_v3_large", choices=["mobilenet_v3_large", "resnet18"])
    p.add_argument("--head", default="lite", choices=["lite", "standard"], help="lite: file under 10 MB")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--width", type=int, default=640, help="synthetic image width (16:9 like 720p)")
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None, help="keep data set and run here (default: temp)")
    return p.parse_args(argv)


def save_fp16(best: Path, out: Path, meta_extra: dict) -> None:
    """Copy a checkpoint with its floating-point weights stored as fp16 (half the size)."""
    from kinect_occlusion.deeplab.model import load_checkpoint, save_checkpoint

    loaded = load_checkpoint(best)
    meta = {k: v for k, v in loaded.meta.items() if k != "train_state"}
    meta.update(meta_extra, weights_dtype="float16")
    save_checkpoint(
        out, loaded.model.half(), input_size=loaded.input_size, mean=loaded.mean, std=loaded.std, meta=meta
    )


def run(args: argparse.Namespace, work: Path) -> int:
    import torch

    from kinect_occlusion.training.evaluate import EvalOptions, evaluate, format_table
    from kinect_occlusion.training.train import TrainOptions, train

    t0 = time.perf_counter()
    # 1. Synthetic data set
    counts = _dataset_writer()(work / "data", args.n_images, args.seed, args.width, args.height, False)
    t_data = time.perf_counter() - t0
    # 2. Train (no early stop: the cosine schedule spans the run)
    torch.manual_seed(args.seed)
    opts = TrainOptions(
        data=work / "data" / "annotations.json",
        out=work / "run",
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        t0=args.epochs,
        device="cpu",
        backbone=args.backbone,
        head=args.head,
        patience=args.epochs,
        input_size=args.size,
        bn_momentum=0.1,
        seed=args.seed,
    )
    result = train(opts)
    t_train = time.perf_counter() - t0 - t_data
    # 3. Store best.pt as fp16 at --out
    extra = {"synthetic": True, "demo": True, "n_images": args.n_images}
    save_fp16(work / "run" / "best.pt", args.out, extra)
    # 4. Test split: coarse vs fused over superpixels
    ev = evaluate(
        EvalOptions(
            data=opts.data,
            checkpoint=args.out,
            split="test",
            partition="superpixel",
            out=work / "eval",
            panels=4,
            device="cpu",
        )
    )
    wall = time.perf_counter() - t0
    size_mb = args.out.stat().st_size / 1e6
    print(f"data: {counts['images']} images / {counts['instances']} instances ({t_data:.0f} s)")
    print(
        f"train: {result.epochs_run} epochs, best val IoU {result.best_iou:.4f} at epoch "
        f"{result.best_epoch} ({t_train:.0f} s)"
    )
    print(format_table(ev))
    print(
        f"wrote {args.out} ({size_mb:.1f} MB, {args.backbone}, input {args.size}); "
        f"total wall time {wall:.0f} s"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run(args, args.workdir)
    work = Path(tempfile.mkdtemp(prefix="demo-model-"))
    try:
        return run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
