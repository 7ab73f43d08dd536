"""``kinect-occlusion status [--json]``: the live picture of every worker of a running pipeline."""

from __future__ import annotations

import argparse
import json
import time

from .. import messages as m
from ..config import CurveConfig
from ..errors import UserError
from . import _args
from ._pipeline import add_config_argument, config_from_args


def register(sub) -> None:
    p = sub.add_parser("status", help="print the state of a running pipeline")
    add_config_argument(p)
    p.add_argument("--endpoint", "-e", default=None, help="subscriber endpoint (default: from the config)")
    p.add_argument(
        "--camera",
        metavar="ID",
        default=None,
        help="a bedside's own status, on its host (bus.bedside_status): also while its server is down",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--wait", type=float, default=None, help="listen this long (default: 2.5 heartbeats)")
    p.set_defaults(func=run)


def collect(endpoint: str, camera: str, wait_s: float, curve=None) -> dict[str, m.Status]:
    """Listen to status messages for ``wait_s`` seconds; the newest per worker."""
    from ..bus import Subscriber

    seen: dict[str, m.Status] = {}
    deadline = time.monotonic() + wait_s
    with Subscriber(endpoint, camera, [m.TOPIC_STATUS], rcvhwm=256, curve=curve) as sub:
        while time.monotonic() < deadline:
            for msg in sub.drain(100):
                if isinstance(msg, m.Status):
                    seen[msg.worker] = msg
    return seen


def inference_lines(seen: dict[str, m.Status]) -> list[str]:
    """One line per worker whose inference server does not serve it, with Triton's reason."""
    lines = []
    for w, s in sorted(seen.items()):
        state, reason = s.info.get("inference_server"), s.info.get("inference_reason")
        if isinstance(state, str) and state != "up":
            why = f": {reason}" if isinstance(reason, str) and reason else ""
            lines.append(f"inference server for {w}: {state[:32]}{why[:240]}")
    return lines


def run(args: argparse.Namespace) -> int:
    import zmq

    from ..bus import curve_keys

    _args.endpoint(args.endpoint, "--endpoint")
    _args.positive(args.wait, "--wait")
    cfg = config_from_args(args)
    name, endpoint = cfg.bus_name, cfg.bus.endpoints(cfg.bus_name)[1]
    curve: CurveConfig | None = cfg.bus.curve
    if args.camera is not None:  # the bedside's local endpoint: no CURVE (ipc:// only)
        name = cfg.for_camera(args.camera).camera.id
        endpoint, curve = cfg.bus.bedside_status.format(camera=name), None
    endpoint = args.endpoint or endpoint
    wait = args.wait or max(2.5 * cfg.runtime.heartbeat_s, 1.0)
    try:
        seen = collect(endpoint, name, wait, curve_keys(curve, server=False) if curve else None)
    except zmq.ZMQError as exc:
        raise UserError(f"cannot listen on {endpoint}: {exc.strerror}") from None
    if not seen:
        raise UserError(
            f"no status from {name} on {endpoint} within {wait:.1f} s (is the pipeline running?)",
            exit_code=1,
        )
    if args.json:
        print(
            json.dumps(
                {w: {"pid": s.pid, "state": s.state, **s.info} for w, s in sorted(seen.items())},
                indent=2,
                default=str,
            )
        )
        return 0
    server = seen["supervisor"].info.get("server") if "supervisor" in seen else None
    if server in ("up", "down"):
        print(f"server link: {server} ({cfg.bus.frontend})")
    for line in inference_lines(seen):
        print(line)
    print(f"{'worker':<10} {'pid':>7} {'state':<11} {'in':>7} {'out':>7} {'rate':>6} {'errors':>6}  details")
    for w, s in sorted(seen.items()):
        i = s.info
        extra = {k: v for k, v in i.items() if k not in ("frames_in", "frames_out", "rate_hz", "errors")}
        print(
            f"{w:<10} {s.pid:>7} {s.state:<11} {i.get('frames_in', ''):>7} {i.get('frames_out', ''):>7} "
            f"{i.get('rate_hz', ''):>6} {i.get('errors', ''):>6}  {json.dumps(extra, default=str)}"
        )
    return 0
