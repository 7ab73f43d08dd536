#!/usr/bin/env python3
"""Write the bundled sample recording: a deterministic synthetic scene as an Azure Kinect .mkv.

    python tools/make_sample_recording.py [--out recordings/sample.mkv] [--seconds 3] [--seed 0]

1280×720 MJPG colour, NFOV 2×2-binned depth (320×288, uint16 mm), no IR, with a SYNTHETIC
calibration.json (marked as such in its Metadata.Notes; not from a real device). Depth is stored raw
(b16g, ~184 KB a capture, as the Kinect does), so the frame rate is kept low to keep the file small.
Same arguments → byte-identical file (fixed track UIDs and date).
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

log = logging.getLogger("make_sample_recording")

SAMPLE_DATE = datetime(2024, 1, 1, tzinfo=timezone.utc)


def make_sample(out: Path, seconds: float, seed: int, fps: int, jpeg_quality: int) -> int:
    """Render the synthetic scene and record it; returns the number of captures written."""
    from kinect_occlusion.commands.record import record_frames
    from kinect_occlusion.sources.mkv_writer import K4AMkvWriter, synthetic_calibration_json
    from kinect_occlusion.sources.synthetic import SyntheticSource

    n_frames = max(1, round(seconds * fps))
    out.parent.mkdir(parents=True, exist_ok=True)
    source = SyntheticSource(width=1280, height=720, fps=fps, seed=seed, n_frames=n_frames, realtime=False)
    with (
        source,
        K4AMkvWriter(
            out,
            color_mode="MJPG_720P",
            depth_mode="NFOV_2X2BINNED",
            ir=False,
            fps=fps,
            calibration_json=synthetic_calibration_json("000000000000"),
            serial="000000000000",
            start_offset_ns=None,
            jpeg_quality=jpeg_quality,
            uid_seed=seed,
            date_utc=SAMPLE_DATE,
        ) as writer,
    ):
        return record_frames(source, writer, n_frames)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("recordings/sample.mkv"), help="output .mkv")
    parser.add_argument("--seconds", type=float, default=3.0, help="length in seconds")
    parser.add_argument("--seed", type=int, default=0, help="scene seed")
    parser.add_argument(
        "--fps", type=int, choices=[5, 15, 30], default=5, help="frame rate (5 keeps it ~3 MB)"
    )
    parser.add_argument("--jpeg-quality", type=int, default=60, help="MJPG quality 1-100")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    n = make_sample(args.out, args.seconds, args.seed, args.fps, args.jpeg_quality)
    log.info("wrote %s: %d captures, %.2f MB", args.out, n, args.out.stat().st_size / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
