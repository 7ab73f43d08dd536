"""``kinect-occlusion augment-preview DATA --out DIR``: a PNG grid of augmented training samples."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import _args


def register(sub) -> None:
    p = sub.add_parser("augment-preview", help="write a grid of augmented samples (Copy-Paste, jitter)")
    p.add_argument("data", type=Path, help="Label Studio JSON export or COCO JSON")
    p.add_argument("--out", type=Path, required=True, help="folder for augment_preview.png")
    p.add_argument("--images", type=Path, default=None, help="folder to look for images by name")
    p.add_argument("--n", type=int, default=16, help="number of samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256, help="letterbox size of each tile")
    p.add_argument("--copy-paste", type=float, default=0.1, help="Copy-Paste ratio of the instance pool")
    p.add_argument("--roi", default="full", help="full | annotations | x,y,w,h")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError

    # Arguments first, before the (slow) torch import
    _args.input_file(args.data, "DATA")
    _args.input_folder(args.images, "--images")
    if args.size < 16 or not args.copy_paste >= 0:
        raise UserError("--size must be at least 16 and --copy-paste >= 0")
    _args.output_folder(args.out, "--out")
    import numpy as np

    from ..training import panels
    from ..training.data import load_dataset, prepare_sample
    from .train import parse_roi

    ds = load_dataset(args.data, args.images)
    if not ds.samples or args.n < 1:
        raise UserError(f"{args.data}: no usable images to preview (or --n < 1)")
    roi = parse_roi(args.roi)
    from ..training.augment import OcclusionDataset  # torch: only once the annotations are usable

    # Each tile: a sample (cycling through the set), augmented with its own index
    chosen = [ds.samples[i % len(ds.samples)] for i in range(args.n)]
    prepared = [prepare_sample(s, args.size, roi) for s in chosen]
    aug = OcclusionDataset(prepared, augment=True, copy_paste_ratio=args.copy_paste, seed=args.seed)
    tiles = []
    for i in range(args.n):
        image, target, n = aug.augmented(i)
        tile = panels.titled(panels.overlay(image, target), f"{prepared[i].name} +{n}")
        tiles.append(tile)
    cols = int(np.ceil(np.sqrt(args.n)))
    out = args.out / "augment_preview.png"
    panels.save_rgb(out, panels.grid(tiles, cols))
    print(f"wrote {out} ({args.n} samples, red = occlusion, +N = instances pasted)")
    return 0
