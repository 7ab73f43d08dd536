"""``kinect-occlusion train``: fine-tune the DeepLabV3+ coarse branch on annotated images."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import _args


def register(sub) -> None:
    p = sub.add_parser("train", help="train the DeepLabV3+ coarse model (Label Studio or COCO annotations)")
    p.add_argument("--data", type=Path, required=True, help="Label Studio JSON export or COCO JSON")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs)")
    p.add_argument("--images", type=Path, default=None, help="folder to look for images by name")
    p.add_argument("--split-file", type=Path, default=None, help='JSON {"train": [names], "val": [...], ...}')
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-2, help="SGD learning rate (cosine warm restarts)")
    p.add_argument("--device", default="auto", help="cpu | cuda | auto")
    p.add_argument("--backbone", default="resnet50", choices=["resnet50", "resnet18", "mobilenet_v3_large"])
    p.add_argument(
        "--head",
        default="standard",
        choices=["standard", "lite"],
        help="standard: the paper's ASPP/decoder; lite: separable convs at 128 channels (small, fast on CPU)",
    )
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        help="our checkpoint, or a torchvision DeepLabV3 state dict (backbone + ASPP)",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument(
        "--patience", type=int, default=10, help="early stop after this many epochs without IoU gain"
    )
    p.add_argument("--input-size", type=int, default=512, help="letterbox size (pixels)")
    p.add_argument("--roi", default="full", help="full | annotations | x,y,w,h")
    p.add_argument(
        "--copy-paste", type=float, default=0.1, help="Copy-Paste ratio of the instance pool (0: off)"
    )
    p.add_argument(
        "--bn-momentum",
        type=float,
        default=None,
        help="BatchNorm momentum override (default: the backbone's; MobileNetV3 uses 0.01)",
    )
    p.add_argument("--workers", type=int, default=0, help="data loader processes")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def parse_roi(text: str) -> str | tuple[int, int, int, int]:
    """``full``, ``annotations`` or ``x,y,w,h``."""
    from ..errors import UserError

    if text in ("full", "annotations"):
        return text
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError as exc:
        raise UserError(f"--roi {text!r}: expected full, annotations or x,y,w,h") from exc
    return x, y, w, h


def check_inputs(args: argparse.Namespace) -> None:
    """The files and folders a training or evaluation run reads exist (before anything is written)."""
    _args.input_file(args.data, "--data")
    _args.input_folder(args.images, "--images")
    _args.input_file(args.split_file, "--split-file")
    _args.device(args.device, "--device")
    if args.split_file is not None:
        # The library's rule, read once here so a bad file fails before the slow imports
        from ..training.splits import read_split_file

        read_split_file(args.split_file, "--split-file")


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..geometry import MAX_INPUT_SIZE, MIN_INPUT_SIZE

    # Arguments first, before the (slow) torch import; a size a checkpoint may hold (load refuses others)
    if args.epochs < 1 or args.batch_size < 1:
        raise UserError("--epochs and --batch-size must be >= 1")
    if not MIN_INPUT_SIZE <= args.input_size <= MAX_INPUT_SIZE:
        raise UserError(f"--input-size must be {MIN_INPUT_SIZE}…{MAX_INPUT_SIZE} (got {args.input_size})")
    if args.workers < 0 or args.patience < 1 or not args.lr > 0 or not args.copy_paste >= 0:
        raise UserError("--workers must be >= 0, --patience >= 1, --lr > 0 and --copy-paste >= 0")
    if args.bn_momentum is not None and not 0 < args.bn_momentum <= 1:
        raise UserError("--bn-momentum must be in (0, 1]")
    check_inputs(args)
    _args.output_folder(args.out, "--out")
    from ..training.train import TrainOptions, train

    opts = TrainOptions(
        data=args.data,
        out=args.out,
        images=args.images,
        split_file=args.split_file,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        device=args.device,
        backbone=args.backbone,
        head=args.head,
        init=args.init,
        resume=args.resume,
        patience=args.patience,
        input_size=args.input_size,
        roi=parse_roi(args.roi),
        copy_paste=args.copy_paste,
        bn_momentum=args.bn_momentum,
        workers=args.workers,
        seed=args.seed,
    )
    result = train(opts)
    state = "interrupted" if result.interrupted else "early stop" if result.stopped_early else "done"
    print(
        f"{state}: {result.epochs_run} epochs, best val IoU {result.best_iou:.4f} at epoch "
        f"{result.best_epoch} -> {Path(args.out) / 'best.pt'}"
    )
    return 130 if result.interrupted else 0
