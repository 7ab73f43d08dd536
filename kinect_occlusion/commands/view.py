"""``kinect-occlusion view``: the live view in a browser for any running pipeline."""

from __future__ import annotations

import argparse
import os
import threading

from ..errors import UserError
from ._pipeline import add_config_argument, config_from_args


def register(sub) -> None:
    p = sub.add_parser("view", help="serve the live view of running pipelines to a browser")
    p.add_argument(
        "--endpoint",
        "-e",
        action="append",
        default=None,
        help="subscriber endpoint of a pipeline (repeat for several; default: bus.backend of the config)",
    )
    p.add_argument("--camera", default=None, help="camera id, or * for every camera (default: *)")
    p.add_argument("--port", type=int, default=None, help="HTTP port (default: viewer.port; 0: any free)")
    p.add_argument("--bind", default=None, help="listen address (default: viewer.bind, 127.0.0.1)")
    p.add_argument(
        "--token",
        default=None,
        help="required on every page and WebSocket (or set $KINECT_OCCLUSION_VIEWER_TOKEN); "
        "mandatory off loopback",
    )
    p.add_argument("--max-fps", type=float, default=None, help="pictures per second per camera")
    p.add_argument("--max-width", type=int, default=None, help="picture width in pixels")
    add_config_argument(p)
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> None:
    from ._args import camera_id, endpoint, positive

    camera_id(args.camera, "--camera")
    for value in args.endpoint or []:
        endpoint(value, "--endpoint")
    positive(args.max_fps, "--max-fps")
    if args.max_fps is not None and args.max_fps > 30:
        raise UserError(f"--max-fps {args.max_fps}: at most 30")
    if args.port is not None and not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: must be 0–65535")
    if args.max_width is not None and not 64 <= args.max_width <= 3840:
        raise UserError(f"--max-width {args.max_width}: must be 64–3840")


def run(args: argparse.Namespace) -> int:
    from ..bus import curve_keys
    from ..runtime.worker import install_stop_handlers
    from ..viewer.security import TOKEN_ENV
    from ..viewer.service import run_viewer, settings_from_config

    _check_args(args)
    cfg = config_from_args(args)
    camera = args.camera or "*"
    endpoints = args.endpoint or [cfg.bus.endpoints(cfg.camera.id)[1]]
    token = args.token or os.environ.get(TOKEN_ENV) or None
    settings = settings_from_config(
        cfg.viewer,
        bind=args.bind,
        port=args.port,
        token=token,
        max_fps=args.max_fps,
        max_width=args.max_width,
    )
    stop = threading.Event()
    install_stop_handlers(stop)
    run_viewer(endpoints, camera, settings, stop, curve_keys(cfg.bus.curve, server=False))
    return 0
