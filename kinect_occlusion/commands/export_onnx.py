"""``kinect-occlusion export-onnx CHECKPOINT --out MODEL.onnx``: the coarse model for onnxruntime."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import UserError
from . import _args

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("export-onnx", help="export a DeepLabV3+ checkpoint to ONNX (probability output)")
    p.add_argument("checkpoint", help="our DeepLabV3+ checkpoint (.pt, made by 'kinect-occlusion train')")
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument(
        "--no-check", action="store_true", help="skip comparing onnxruntime with torch on a random frame"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export, then (unless --no-check) verify onnxruntime agrees with torch to within 1e-3."""
    out = Path(args.out)
    if out.suffix != ".onnx":
        raise UserError(f"--out {out}: use a .onnx file name")
    _args.output_folder(out.parent, "--out")
    _args.output_file(out, "--out")
    import numpy as np

    from ..deeplab.model import load_checkpoint
    from ..deeplab.onnx_export import OnnxCoarsePredictor, export_onnx
    from ..deeplab.predict import CoarsePredictor

    loaded = load_checkpoint(args.checkpoint, config_key="CHECKPOINT")
    export_onnx(loaded, out)
    log.info(
        "wrote %s (%.1f MB, input 1×3×%d×%d)",
        out,
        out.stat().st_size / 1e6,
        loaded.input_size,
        loaded.input_size,
    )
    if args.no_check:
        return 0
    # Same random frame through both runtimes
    rgb = np.random.default_rng(0).integers(0, 256, (loaded.input_size, loaded.input_size, 3), np.uint8)
    diff = np.abs(
        OnnxCoarsePredictor(loaded, onnx_path=out).predict(rgb, None)
        - CoarsePredictor(loaded, device="cpu").predict(rgb, None)
    ).max()
    if diff >= 1e-3:
        raise UserError(
            f"{out}: onnxruntime differs from torch by {diff:.2e} (> 1e-3); use deeplab.runtime: torch"
        )
    log.info("onnxruntime agrees with torch (max abs difference %.1e)", diff)
    return 0
