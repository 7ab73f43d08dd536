"""``kinect-occlusion run``: the bedside daemon (camera source from the config)."""

from __future__ import annotations

import argparse

from ._pipeline import add_config_argument, config_from_args, run_pipeline


def register(sub) -> None:
    p = sub.add_parser("run", help="run the pipeline as configured (bedside daemon)")
    add_config_argument(p)
    p.add_argument(
        "--source", choices=["kinect", "mkv", "synthetic"], default=None, help="override camera.source"
    )
    p.add_argument("--save-video", metavar="OUT.mp4", default=None, help="write an overlay video")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = {"camera": {"source": args.source}} if args.source else None
    cfg = config_from_args(args, overrides)
    return run_pipeline(cfg, args.save_video)
