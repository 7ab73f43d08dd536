"""``kinect-occlusion export FILE.mkv --out DIR``: frames as PNG (RGB colour, 16-bit depth in mm)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import UserError

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("export", help="write the frames of a recording as PNG files")
    p.add_argument("file", help="recording (.mkv)")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--ir", action="store_true", help="also write ir_NNNNNN.png (16-bit)")
    p.add_argument(
        "--aligned",
        action="store_true",
        help="depth reprojected onto the colour image: depth_aligned_NNNNNN.png (colour-sized), not raw",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write color_NNNNNN.png (8-bit RGB) and depth_NNNNNN.png (16-bit mm, bit-exact) per frame."""
    import cv2
    from tqdm import tqdm

    from ..sources.mkv import MkvSource, probe_mkv

    if args.max_frames is not None and args.max_frames < 1:
        raise UserError("--max-frames must be at least 1")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    total = probe_mkv(args.file).frame_count or 0
    total = min(total, args.max_frames) if args.max_frames else total
    n = 0
    aligned = getattr(args, "aligned", False)  # callers building a Namespace by hand may leave it out
    depth_name = "depth_aligned" if aligned else "depth"
    source = MkvSource(args.file, ir=args.ir, max_frames=args.max_frames, align_depth=aligned)
    with source:
        if aligned and not source.depth_aligned:
            raise UserError(f"{args.file}: --aligned: cannot align this recording's depth (see the warning)")
        for frame in tqdm(source, total=total, unit="frame", desc="export"):
            # One PNG per image the capture holds, named by frame id
            if frame.color is not None:
                _imwrite(
                    cv2, out / f"color_{frame.frame_id:06d}.png", cv2.cvtColor(frame.color, cv2.COLOR_RGB2BGR)
                )
            if frame.depth is not None:
                _imwrite(cv2, out / f"{depth_name}_{frame.frame_id:06d}.png", frame.depth)
            if frame.ir is not None:
                _imwrite(cv2, out / f"ir_{frame.frame_id:06d}.png", frame.ir)
            n += 1
    log.info("exported %d frames to %s", n, out)
    return 0


def _imwrite(cv2, path: Path, image) -> None:
    if not cv2.imwrite(str(path), image):
        raise UserError(f"{path}: cannot write the PNG (disk full or no permission?)")
