"""``kinect-occlusion subscribe``: watch a topic; print rate, latency and drops; optionally save."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .. import messages as m
from ..errors import UserError
from . import _args
from ._pipeline import add_config_argument, config_from_args


def register(sub) -> None:
    p = sub.add_parser("subscribe", help="receive a topic and print rate, latency and drops")
    p.add_argument(
        "--topic", "-t", default=m.TOPIC_OCCLUSION, choices=sorted(m.TOPICS), help="topic to receive"
    )
    p.add_argument(
        "--endpoint", "-e", default=None, help="subscriber endpoint (default: bus.backend of the config)"
    )
    p.add_argument("--camera", default=None, help="camera id (default: camera.id of the config; * for all)")
    add_config_argument(p)
    p.add_argument("--save", metavar="DIR", default=None, help="save each received array as PNG")
    p.add_argument("--every", action="store_true", help="every message in order instead of the newest")
    p.add_argument("--count", type=int, default=None, help="stop after N messages")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--timeout", type=float, default=10.0, help="give up after S seconds without a message")
    p.set_defaults(func=run)


def save_message(msg: m.Message, out: Path) -> None:
    """Write the message's arrays as PNG files named by topic and frame id."""
    import cv2

    name = f"{msg.TOPIC.replace('.', '_')}_{msg.frame_id:06d}"
    image = None
    if isinstance(msg, m.ColorFrame):
        image = np.ascontiguousarray(msg.image[..., ::-1])
    elif isinstance(msg, m.DepthFrame):
        image = np.ascontiguousarray(msg.depth)
    elif isinstance(msg, m.CoarseMask):
        image = np.clip(msg.probability() * 255, 0, 255).astype(np.uint8)
    elif isinstance(msg, m.OcclusionMask):
        image = (msg.mask > 0).astype(np.uint8) * 255
    elif isinstance(msg, m.Partition):
        image = np.clip(msg.labels, 0, 65535).astype(np.uint16)
    elif isinstance(msg, m.DepthMask):  # occluded white, unknown (no depth) grey, not occluded black
        image = np.select([msg.mask == 1, msg.mask == m.DEPTH_MASK_UNKNOWN], [255, 128]).astype(np.uint8)
    if image is not None and not cv2.imwrite(str(out / f"{name}.png"), image):
        raise UserError(f"--save {out}: cannot write {name}.png (disk full or no permission?)", exit_code=1)


def run(args: argparse.Namespace) -> int:
    from ..bus import curve_keys
    from ..client import OcclusionSubscriber

    _args.endpoint(args.endpoint, "--endpoint")
    _args.camera_id(args.camera, "--camera")
    for option, value in (
        ("--count", args.count),
        ("--duration", args.duration),
        ("--timeout", args.timeout),
    ):
        _args.positive(value, option)
    cfg = config_from_args(args)
    camera = args.camera or ("*" if cfg.ward else cfg.camera.id)
    endpoint = args.endpoint or cfg.bus.endpoints(cfg.bus_name)[1]
    out = _args.output_folder(args.save, "--save") if args.save else None
    try:
        keys = curve_keys(cfg.bus.curve, server=False)
        sub = OcclusionSubscriber(endpoint, camera, (args.topic,), latest_only=not args.every, curve=keys)
    except Exception as exc:
        raise UserError(f"cannot subscribe to {endpoint}: {exc}") from None
    return _loop(sub, args, out, endpoint)


def _loop(sub, args: argparse.Namespace, out: Path | None, endpoint: str) -> int:
    n, lat, start, last_print = 0, [], time.monotonic(), time.monotonic()
    with sub:
        while args.count is None or n < args.count:
            if args.duration is not None and time.monotonic() - start > args.duration:
                break
            msg = sub.receive(min(args.timeout, 1.0))
            if msg is None:
                if time.monotonic() - max(start, last_print) > args.timeout:
                    raise UserError(
                        f"no {args.topic} message on {endpoint} for {args.timeout:.0f} s "
                        "(is the pipeline running? right --endpoint/--camera?)",
                        exit_code=1,
                    )
                continue
            n += 1
            lat.append((m.now_us() - (msg.origin_us or msg.sent_us)) / 1000)
            if out is not None:
                save_message(msg, out)
            if time.monotonic() - last_print >= 1.0:
                _print(n, lat, time.monotonic() - start, sub)
                last_print = time.monotonic()
    _print(n, lat, time.monotonic() - start, sub)
    return 0


def _print(n: int, lat: list, elapsed: float, sub) -> None:
    p50, p95 = (np.percentile(lat, 50), np.percentile(lat, 95)) if lat else (float("nan"),) * 2
    print(
        f"{n} msgs  {n / max(elapsed, 1e-9):.1f}/s  latency p50 {p50:.1f} ms p95 {p95:.1f} ms  "
        f"dropped {sub.dropped}  invalid {sub.invalid}",
        flush=True,
    )
