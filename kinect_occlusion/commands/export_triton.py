"""``kinect-occlusion export-triton --checkpoint C --out model_repository/``: a Triton model repository."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from ..config import MODEL_NAME_PATTERN
from ..errors import UserError
from . import _args

log = logging.getLogger(__name__)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def register(sub) -> None:
    p = sub.add_parser("export-triton", help="write a Triton Inference Server model repository (ONNX)")
    p.add_argument("--checkpoint", required=True, help="our DeepLabV3+ checkpoint (.pt)")
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


def run(args: argparse.Namespace) -> int:
    """Load the checkpoint, write ``OUT/NAME/{config.pbtxt,1/model.onnx[,1/model.py]}``."""
    from ..deeplab.model import load_checkpoint
    from ..deeplab.triton_repo import TritonModelSpec, write_repository

    if not re.fullmatch(MODEL_NAME_PATTERN, args.name):
        raise UserError(f"--name {args.name!r}: use letters, digits, '_', '-' or '.'")
    out = _args.output_folder(Path(args.out), "--out")
    loaded = load_checkpoint(args.checkpoint, config_key="--checkpoint")
    spec = TritonModelSpec(
        name=args.name,
        input_size=loaded.input_size,
        backend=args.backend,
        max_batch=args.max_batch,
        preferred_batch=tuple(b for b in (4, 8) if b <= args.max_batch) or (args.max_batch,),
        max_queue_delay_us=args.max_queue_delay_us,
        queue_timeout_us=args.queue_timeout_us,
        instances=args.instances,
        kind="KIND_GPU" if args.gpu else "KIND_CPU",
        threads=max(args.threads, 0),
    )
    model_dir = write_repository(loaded, out, spec)
    log.info("wrote %s (%s backend, input N×3×%d×%d)", model_dir, args.backend, *(loaded.input_size,) * 2)
    return 0
