"""``kinect-occlusion replay FILE.mkv``: the whole pipeline on a recording."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ._pipeline import add_config_argument, config_from_args, run_pipeline


def register(sub) -> None:
    p = sub.add_parser("replay", help="run the pipeline on an Azure Kinect .mkv recording")
    p.add_argument("file", help="recording (.mkv)")
    add_config_argument(p)
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--rate", choices=["realtime", "max"], default=None, help="pacing (default: config)")
    p.add_argument("--loop", action="store_true", help="replay in a loop until stopped")
    p.add_argument("--save-video", metavar="OUT.mp4", default=None, help="write an overlay video")
    p.add_argument(
        "--every-frame",
        action="store_true",
        help="every frame through every stage, none dropped (deterministic masks; --rate max unless given)",
    )
    p.add_argument(
        "--save-masks",
        metavar="DIR",
        default=None,
        help="write each frame's mask as DIR/NNNNNN.png (0/255) plus DIR/masks.csv (provenance)",
    )
    p.add_argument("--overwrite", action="store_true", help="--save-masks may replace the masks in DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    camera: dict = {"source": "mkv", "mkv_path": str(Path(args.file).resolve())}
    if args.max_frames is not None:
        if args.max_frames < 1:  # checked here: the config's own check would blame the config file
            raise UserError(f"--max-frames {args.max_frames}: must be 1 or more")
        camera["max_frames"] = args.max_frames
    if args.rate is not None:
        camera["rate"] = args.rate
    if args.loop:
        camera["loop"] = True
    overrides: dict = {"camera": camera}
    if args.every_frame:
        camera.setdefault("rate", "max")  # waiting for credit paces it; realtime only if asked
        overrides["runtime"] = {"every_frame": True}
    cfg = config_from_args(args, overrides)
    return run_pipeline(cfg, args.save_video, save_masks=args.save_masks, overwrite=args.overwrite)
