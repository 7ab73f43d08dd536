"""``kinect-occlusion run``: the daemon — all in one box, or a ward's bedside or server role."""

from __future__ import annotations

import argparse

from ..config import Config
from ..errors import UserError
from ._pipeline import add_config_argument, config_from_args, run_pipeline


def register(sub) -> None:
    p = sub.add_parser("run", help="run the pipeline as configured (bedside daemon)")
    add_config_argument(p)
    p.add_argument(
        "--source", choices=["kinect", "mkv", "synthetic"], default=None, help="override camera.source"
    )
    p.add_argument("--save-video", metavar="OUT.mp4", default=None, help="write an overlay video")
    p.add_argument(
        "--role",
        choices=["all", "bedside", "server"],
        default="all",
        help="all: the whole pipeline for one camera (default); bedside: capture for --camera, "
        "publishing to the server's bus; server: the bus proxy and inference for every camera",
    )
    p.add_argument("--camera", metavar="ID", default=None, help="the camera of a bedside (an id in cameras:)")
    p.set_defaults(func=run)


def role_config(cfg: Config, role: str, camera: str | None) -> Config:
    """The config ``role`` runs with (UserError: one line naming the option to fix)."""
    if role == "bedside":
        if camera is None:
            raise UserError("run --role bedside needs --camera ID (one of the config's cameras)")
        return cfg.for_camera(camera)
    if camera is not None:
        raise UserError(f"--camera is for --role bedside (a {role} serves every camera of the config)")
    if role == "all" and len(cfg.camera_list()) > 1:
        raise UserError(
            "this config lists several cameras: run --role server, and --role bedside --camera ID per bed"
        )
    return cfg if role == "server" else cfg.for_camera(cfg.camera_list()[0].id)


def run(args: argparse.Namespace) -> int:
    overrides = {"camera": {"source": args.source}} if args.source else None
    cfg = role_config(config_from_args(args, overrides), args.role, args.camera)
    if args.role == "bedside":
        from ..runtime.claim import refuse_if_claimed

        refuse_if_claimed(cfg)
    return run_pipeline(cfg, args.save_video, role=args.role)
