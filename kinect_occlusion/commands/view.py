"""``kinect-occlusion view``: the live view in a browser for any running pipeline."""

from __future__ import annotations

import argparse
import os
import threading
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ._pipeline import add_config_argument, config_from_args

if TYPE_CHECKING:
    from ..config import ViewerConfig


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


# The options that override the ``viewer:`` section, by its field names
OVERRIDES = {
    "bind": "--bind",
    "port": "--port",
    "token": "--token",
    "max_fps": "--max-fps",
    "max_width": "--max-width",
}


def _check_args(args: argparse.Namespace) -> None:
    from ._args import camera_id, endpoint

    camera_id(args.camera, "--camera")
    for value in args.endpoint or []:
        endpoint(value, "--endpoint")


def viewer_config(base: ViewerConfig, **given: Any) -> ViewerConfig:
    """``base`` with the command line's values that are not None, checked by ViewerConfig's own rules.

    The first problem is one line naming the option (``--max-fps 40.0: Input should be ...``).
    """
    from pydantic import ValidationError

    from ..config import ViewerConfig

    given = {k: v for k, v in given.items() if v is not None}
    try:
        return ViewerConfig.model_validate({**base.model_dump(), **given})
    except ValidationError as exc:
        error = exc.errors()[0]
        msg = error["msg"].removeprefix("Value error, ")
        field = str(error["loc"][0]) if error["loc"] else ""
        if field not in OVERRIDES:  # a rule across fields (bind and token)
            raise UserError(f"viewer: {msg}") from None
        shown = "***" if field == "token" else given.get(field)
        raise UserError(f"{OVERRIDES[field]} {shown}: {msg}") from None


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
    viewer = viewer_config(
        cfg.viewer,
        bind=args.bind,
        port=args.port,
        token=token,
        max_fps=args.max_fps,
        max_width=args.max_width,
    )
    settings = settings_from_config(viewer)
    stop = threading.Event()
    install_stop_handlers(stop)
    run_viewer(endpoints, camera, settings, stop, curve_keys(cfg.bus.curve, server=False))
    return 0
