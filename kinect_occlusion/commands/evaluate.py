"""``kinect-occlusion evaluate``: coarse vs fused metrics (the paper's Table I) and comparison panels."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from . import _args


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score coarse vs fused (SOSS) masks on annotated images")
    p.add_argument("--data", type=Path, required=True, help="Label Studio JSON export or COCO JSON")
    p.add_argument("--checkpoint", type=Path, required=True, help="our DeepLabV3+ checkpoint (best.pt)")
    p.add_argument("--images", type=Path, default=None, help="folder to look for images by name")
    p.add_argument(
        "--split",
        default="test",
        choices=["test", "val", "train", "all"],
        help="test: the checkpoint's own test split when it stores one",
    )
    p.add_argument(
        "--split-file", type=Path, default=None, help='JSON {"train": [...], "val": [...], "test": [...]}'
    )
    p.add_argument("--seed", type=int, default=None, help="split seed (default: the checkpoint's)")
    p.add_argument("--partition", default="superpixel", choices=["sam", "superpixel"])
    p.add_argument("--sam-checkpoint", type=Path, default=None, help="local SAM .pth (for --partition sam)")
    p.add_argument("--superpixel", default="seeds", choices=["seeds", "slic", "felzenszwalb"])
    p.add_argument("--n-segments", type=int, default=300)
    p.add_argument("--roi", default=None, help="full | annotations | x,y,w,h (default: as trained)")
    p.add_argument("--out", type=Path, default=None, help="folder for metrics.json, per_image.csv, panels/")
    p.add_argument("--panels", type=int, default=20, help="write panels for the first N images")
    p.add_argument("--device", default="auto", help="cpu | cuda | auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .train import check_inputs, parse_roi

    # Arguments first, before the (slow) torch import
    check_inputs(args)
    if args.panels < 0 or args.n_segments < 2:
        raise UserError("--panels must be >= 0 and --n-segments >= 2")
    if args.out is not None:
        _args.output_folder(args.out, "--out")
    from ..training.evaluate import EvalOptions, evaluate, format_table

    opts = EvalOptions(
        data=args.data,
        checkpoint=args.checkpoint,
        images=args.images,
        split=args.split,
        split_file=args.split_file,
        seed=args.seed,
        partition=args.partition,
        sam_checkpoint=args.sam_checkpoint,
        superpixel_method=args.superpixel,
        n_segments=args.n_segments,
        roi=parse_roi(args.roi) if args.roi else None,
        out=args.out,
        panels=args.panels,
        device=args.device,
    )
    result = evaluate(opts)
    print(format_table(result))
    if args.out:
        print(f"wrote {args.out / 'metrics.json'}, per_image.csv and panels/")
    return 0
