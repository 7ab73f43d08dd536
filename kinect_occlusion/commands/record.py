"""``kinect-occlusion record OUT.mkv --seconds N``: record an Azure Kinect .mkv from the camera or a
synthetic scene, in the layout the Azure Kinect SDK writes (readable by pyk4a / k4aviewer)."""

from __future__ import annotations

import argparse
import logging

from ..errors import UserError
from . import _args

log = logging.getLogger(__name__)

DEPTH_CHOICES = ["NFOV_UNBINNED", "NFOV_2X2BINNED", "WFOV_UNBINNED", "WFOV_2X2BINNED", "OFF"]


def register(sub) -> None:
    p = sub.add_parser("record", help="record an Azure Kinect .mkv (camera or synthetic scene)")
    p.add_argument("out", help="output recording (.mkv)")
    p.add_argument("--seconds", type=float, required=True, help="length of the recording")
    p.add_argument(
        "--source", choices=["synthetic", "kinect"], default="synthetic", help="where frames come from"
    )
    p.add_argument("--fps", type=int, choices=[5, 15, 30], default=30, help="frame rate")
    p.add_argument(
        "--color-mode", default="MJPG_720P", help="<MJPG|NV12|YUY2|BGRA32>_<720P…3072P> (default MJPG_720P)"
    )
    p.add_argument("--depth-mode", choices=DEPTH_CHOICES, default="NFOV_UNBINNED", help="depth mode")
    p.add_argument("--seed", type=int, default=0, help="scene seed for --source synthetic")
    p.add_argument("--jpeg-quality", type=int, default=90, help="MJPG quality 1-100")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Record ``--seconds`` of frames to ``out``; the writer is closed (file valid) even on Ctrl-C."""
    from ..sources.mkv_writer import K4AMkvWriter, parse_color_mode

    try:
        color = parse_color_mode(args.color_mode)
    except ValueError as exc:
        raise UserError(f"--color-mode: {exc}") from None
    _args.positive(args.seconds, "--seconds")
    if not 1 <= args.jpeg_quality <= 100:
        raise UserError("--jpeg-quality must be between 1 and 100")
    if args.seed < 0:
        raise UserError("--seed must be 0 or more")
    _args.output_file(args.out, "record")
    n_frames = max(1, round(args.seconds * args.fps))
    source = build_record_source(args, color, n_frames)
    with source:
        writer = K4AMkvWriter(
            args.out,
            color_mode=args.color_mode,
            depth_mode=args.depth_mode,
            fps=args.fps,
            calibration_json=getattr(source, "calibration", None),
            start_offset_ns=None,
            jpeg_quality=args.jpeg_quality,
            ir=args.source == "kinect",
            uid_seed=args.seed if args.source == "synthetic" else None,
        )
        try:
            with writer:
                written = record_frames(source, writer, n_frames)
        except OSError as exc:  # disk full, disk gone: the writer's file, the source reads none
            raise UserError(
                f"record {args.out}: cannot write ({exc.strerror or exc}) — the recording is incomplete; "
                "free some space or record elsewhere",
                exit_code=1,
            ) from None
    log.info("recorded %d frames to %s", written, args.out)
    return 0


def build_record_source(args: argparse.Namespace, color: tuple[str, int, int] | None, n_frames: int):
    """The synthetic scene (with a synthetic calibration) or the Kinect, at the requested modes."""
    fmt, width, height = color or ("MJPG", 1280, 720)
    if args.source == "synthetic":
        from ..sources.mkv_writer import synthetic_calibration_json
        from ..sources.synthetic import SyntheticSource

        source = SyntheticSource(
            width=width,
            height=height,
            fps=args.fps,
            seed=args.seed,
            n_frames=n_frames,
            realtime=False,
            depth=args.depth_mode != "OFF",
        )
        if getattr(source, "calibration", None) is None:
            source.calibration = synthetic_calibration_json()
        return source
    from ..sources.kinect import KinectSource

    resolution = args.color_mode.partition("_")[2] if color else "720P"
    return KinectSource(
        color_resolution=resolution,
        fps=args.fps,
        color_format="BGRA32" if fmt == "BGRA" else fmt,
        depth_mode=args.depth_mode,
        align_depth=False,
    )


def record_frames(source, writer, n_frames: int) -> int:
    """Write up to ``n_frames`` frames of ``source``, resized to the writer's modes; returns the count."""
    import cv2
    from tqdm import tqdm

    written = 0
    with tqdm(total=n_frames, unit="frame", desc="record") as bar:
        for frame in source:
            color, depth, ir = frame.color, frame.depth, frame.ir
            # Fit each image to the recorded mode (synthetic scenes may render at another size)
            if color is not None and writer.color is not None and color.shape[:2] != writer.color[:0:-1]:
                color = cv2.resize(color, writer.color[1:], interpolation=cv2.INTER_AREA)
            if writer.depth_size is not None:
                depth = _fit16(cv2, depth, writer.depth_size)
                ir = _fit16(cv2, ir, writer.depth_size)
            if written == 0:
                _adopt_device_info(source, writer)
            writer.write(color, depth, ir, frame.ts_us)
            written += 1
            bar.update()
            if written >= n_frames:
                break
    return written


def _adopt_device_info(source, writer) -> None:
    """Take the camera's calibration and serial (known once it streams) before the header is written."""
    if getattr(source, "calibration", None):
        writer.calibration_json = source.calibration
    serial = getattr(source, "serial", None) or getattr(source, "device_serial", None)
    if serial:
        writer.serial = serial


def _fit16(cv2, image, size: tuple[int, int]):
    """Nearest-neighbour resize of a uint16 image to (width, height), keeping values exact."""
    if image is None or image.shape[::-1] == size:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)
