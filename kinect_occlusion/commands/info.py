"""``kinect-occlusion info FILE.mkv [--json]``: what an Azure Kinect recording holds."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser("info", help="describe an Azure Kinect .mkv recording (tracks, modes, fps, length)")
    p.add_argument("file", help="recording (.mkv)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the recording's description; SourceError (exit 2) when it is not a readable Kinect .mkv."""
    from ..depth.describe import calibration_dict, format_calibration
    from ..sources.mkv import probe_mkv

    info = probe_mkv(args.file)
    d = info.to_dict()
    d["intrinsics"] = calibration_dict(args.file) if info.has_calibration else None
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    print(format_info(d))
    if d["intrinsics"] is not None:
        print("\n".join(format_calibration(d["intrinsics"])))
    return 0


def format_info(d: dict) -> str:
    """Human-readable summary of ``MkvInfo.to_dict()``."""
    lines = [
        f"file:        {d['path']}",
        f"colour mode: {d['color_mode']}",
        f"depth mode:  {d['depth_mode']}   IR: {d['ir_mode']}",
        f"fps:         {d['fps']}",
        f"frames:      {d['frame_count']}   duration: {d['duration_s']:.3f} s",
        f"serial:      {d['serial']}",
        f"calibration: {'present' if d['has_calibration'] else 'missing'}",
        f"start offset: {d['start_offset_ns']} ns",
        "tracks:",
    ]
    lines += [
        f"  {t['name']:<6} {t['fourcc']:<5} {t['codec']:<9} {t['width']}x{t['height']}" for t in d["tracks"]
    ]
    return "\n".join(lines)
