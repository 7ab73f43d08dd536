"""``kinect-occlusion replay FILE.mkv``: the whole pipeline on a recording."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._pipeline import add_config_argument, config_from_args, run_pipeline


def register(sub) -> None:
    p = sub.add_parser("replay", help="run the pipeline on an Azure Kinect .mkv recording")
    p.add_argument("file", help="recording (.mkv)")
    add_config_argument(p)
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--rate", choices=["realtime", "max"], default=None, help="pacing (default: config)")
    p.add_argument("--loop", action="store_true", help="replay in a loop until stopped")
    p.add_argument("--save-video", metavar="OUT.mp4", default=None, help="write an overlay video")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    camera: dict = {"source": "mkv", "mkv_path": str(Path(args.file).resolve())}
    if args.max_frames is not None:
        camera["max_frames"] = args.max_frames
    if args.rate is not None:
        camera["rate"] = args.rate
    if args.loop:
        camera["loop"] = True
    cfg = config_from_args(args, {"camera": camera})
    return run_pipeline(cfg, args.save_video)
