"""``kinect-occlusion export-triton --checkpoint C [--sam-checkpoint S] --out model_repository/``.

Writes a Triton model repository: the coarse model (``--checkpoint``), the SAM image encoder
(``--sam-checkpoint``, ``--sam-model``), or both, with the same batching and queue settings.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import MODEL_NAME_PATTERN
from ..errors import UserError
from . import _args

if TYPE_CHECKING:
    from ..deeplab.triton_repo import TritonModelSpec

log = logging.getLogger(__name__)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def register(sub) -> None:
    p = sub.add_parser("export-triton", help="write a Triton Inference Server model repository (ONNX)")
    p.add_argument("--checkpoint", help="our DeepLabV3+ checkpoint (.pt)")
    p.add_argument("--sam-checkpoint", help="a SAM checkpoint (.pth): its image encoder is exported")
    p.add_argument(
        "--sam-model", choices=("vit_b", "vit_l", "vit_h", "tiny"), default="vit_b", help="SAM model type"
    )
    p.add_argument("--sam-name", default="sam_encoder", help="encoder model name (sam.triton_model)")
    p.add_argument("--out", required=True, help="model repository folder (created)")
    p.add_argument(
        "--backend",
        choices=("onnx", "python"),
        default="onnx",
        help="onnx: Triton's ONNX Runtime backend (official container); "
        "python: model.py over onnxruntime (servers without that backend)",
    )
    p.add_argument("--name", default="deeplab", help="model name (deeplab.triton_model)")
    p.add_argument("--max-batch", type=_positive, default=8, help="largest batch Triton forms")
    p.add_argument("--max-queue-delay-us", type=_positive, default=2000, help="wait for a batch to fill")
    p.add_argument(
        "--queue-timeout-us", type=_positive, default=200_000, help="reject requests queued longer (stale)"
    )
    p.add_argument("--instances", type=_positive, default=1, help="model instances per device")
    p.add_argument("--gpu", action="store_true", help="instances on GPUs (KIND_GPU) instead of CPU")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads per instance (python)")
    p.set_defaults(func=run)


def _check_names(args: argparse.Namespace) -> None:
    """At least one model, valid and distinct names: else one UserError line."""
    if not args.checkpoint and not args.sam_checkpoint:
        raise UserError(
            "export-triton: give --checkpoint (coarse model), --sam-checkpoint (SAM encoder) or both"
        )
    for flag, name in (("--name", args.name), ("--sam-name", args.sam_name)):
        if not re.fullmatch(MODEL_NAME_PATTERN, name):
            raise UserError(f"{flag} {name!r}: use letters, digits, '_', '-' or '.'")
    if args.checkpoint and args.sam_checkpoint and args.name == args.sam_name:
        raise UserError(f"--name and --sam-name are both {args.name!r}: each model needs its own name")


def run(args: argparse.Namespace) -> int:
    """Write ``OUT/NAME/{config.pbtxt,1/model.onnx[,1/model.py]}`` for each model given."""
    _check_names(args)
    out = _args.output_folder(Path(args.out), "--out")
    if args.checkpoint:
        _export_coarse(args, out)
    if args.sam_checkpoint:
        _export_sam(args, out)
    return 0


def _spec(args: argparse.Namespace, name: str, input_size: int) -> TritonModelSpec:
    """The batching/queue/instance settings shared by both models."""
    from ..deeplab.triton_repo import TritonModelSpec

    return TritonModelSpec(
        name=name,
        input_size=input_size,
        backend=args.backend,
        max_batch=args.max_batch,
        preferred_batch=tuple(b for b in (4, 8) if b <= args.max_batch) or (args.max_batch,),
        max_queue_delay_us=args.max_queue_delay_us,
        queue_timeout_us=args.queue_timeout_us,
        instances=args.instances,
        kind="KIND_GPU" if args.gpu else "KIND_CPU",
        threads=max(args.threads, 0),
    )


def _export_coarse(args: argparse.Namespace, out: Path) -> None:
    from ..deeplab.model import load_checkpoint
    from ..deeplab.triton_repo import write_repository

    loaded = load_checkpoint(args.checkpoint, config_key="--checkpoint")
    model_dir = write_repository(loaded, out, _spec(args, args.name, loaded.input_size))
    log.info("wrote %s (%s backend, input N×3×%d×%d)", model_dir, args.backend, *(loaded.input_size,) * 2)


def _export_sam(args: argparse.Namespace, out: Path) -> None:
    from ..errors import CheckpointError
    from ..sam.partition import build_sam
    from ..sam.triton_export import embedding_dims, write_encoder_repository

    try:
        sam = build_sam(args.sam_model, args.sam_checkpoint, "cpu")
    except CheckpointError as exc:  # name the flags, not the config keys
        text = str(exc).replace("sam.checkpoint", "--sam-checkpoint").replace("sam.model_type", "--sam-model")
        raise CheckpointError(text) from None
    size = int(sam.image_encoder.img_size)
    model_dir = write_encoder_repository(sam, out, _spec(args, args.sam_name, size))
    c, h, w = embedding_dims(sam)
    log.info("wrote %s (%s backend, N×3×%d×%d → N×%d×%d×%d)", model_dir, args.backend, size, size, c, h, w)
