#!/usr/bin/env python3
"""Depth→colour on this CPU: ours vs the Azure Kinect SDK (OpenGL on Mesa/Xvfb) vs open-azure-kinect.

    python tools/bench_depth.py [--depth-mode NFOV_UNBINNED] [--color-res 720P] [--repeat 30]
                                [--sdk-repeat 5] [--frames 3] [--json OUT]          (or: make bench-depth)

One run, one machine: each implementation transforms the same depth frames (tools/k4a/scenes.py:
a ward bed with a patient, an arm over them, dropouts and noise) with the same realistic calibration
(kinect_occlusion/depth/device_calibration.py). Times are the median wall time of ``--repeat``
calls after a warm-up (the SDK's and the peer's measured inside their own process, in .venv-k4a).
Accuracy is against the SDK's ``transformed_depth``: share of identical pixels, mean/max |Δ| mm
overall and on depth edges. Prints a markdown table (for docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools" / "k4a"))

from compare import compare_depth  # noqa: E402
from scenes import ward_scene  # noqa: E402
from sdk_client import peer_transform, sdk_transform  # noqa: E402

from kinect_occlusion.depth.calibration import parse_calibration  # noqa: E402
from kinect_occlusion.depth.device_calibration import device_calibration_json  # noqa: E402
from kinect_occlusion.depth.transform import DepthToColor  # noqa: E402
from kinect_occlusion.sources.k4a_formats import DEPTH_MODES  # noqa: E402


def time_ours(transform: DepthToColor, depth: np.ndarray, repeat: int) -> tuple[list[float], list[float]]:
    """Wall and CPU ms of each call (after one warm-up call)."""
    transform(depth)
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        transform(depth)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return wall, cpu


def _row(name: str, ms: float, note: str, stats: dict | None) -> str:
    if stats is None:
        return f"| {name} | {ms:.1f} | {note} | reference | – | – | – |"
    return (
        f"| {name} | {ms:.1f} | {note} | {stats['identical'] * 100:.3f} % | "
        f"{stats['mean_abs_mm']:.2f} / {stats['max_abs_mm']:.0f} | {stats['edge_identical'] * 100:.2f} % | "
        f"{stats['edge_mean_abs_mm']:.1f} / {stats['edge_max_abs_mm']:.0f} |"
    )


def run(depth_mode: str, color_res: str, repeat: int, frames: int, sdk_repeat: int) -> dict:
    """Time and compare the three implementations; returns every figure."""
    text = device_calibration_json()
    depth = np.stack([ward_scene(*DEPTH_MODES[depth_mode], seed=s) for s in range(frames)])
    t0 = time.perf_counter()
    transform = DepthToColor.build(parse_calibration(text, depth_mode, color_res))
    build_ms = (time.perf_counter() - t0) * 1000
    wall, cpu = time_ours(transform, depth[0], repeat)
    ours = [transform(d) for d in depth]
    sdk = sdk_transform(text, depth_mode, color_res, depth, repeat=sdk_repeat)
    peer = peer_transform(text, depth_mode, color_res, depth, repeat=repeat)

    def stats(images) -> dict:
        per = [compare_depth(img, ref) for img, ref in zip(images, sdk["transformed"], strict=True)]
        return {
            k: float(np.mean([p[k] for p in per])) if "max" not in k else max(p[k] for p in per)
            for k in per[0]
        }

    return {
        "depth_mode": depth_mode,
        "color_res": color_res,
        "frames": frames,
        "repeat": repeat,
        "sdk_repeat": sdk_repeat,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load": os.getloadavg()[0],
        "ours_build_ms": build_ms,
        "ours_ms": float(np.median(wall)),
        "ours_cpu_ms": float(np.median(cpu)),
        "sdk_ms": float(np.median(sdk["ms"])),
        "peer_ms": float(np.median(peer["ms"])),
        "ours_vs_sdk": stats(ours),
        "peer_vs_sdk": stats(list(peer["transformed"])),
    }


def table(r: dict) -> str:
    w, h = DEPTH_MODES[r["depth_mode"]]
    head = (
        f"Depth→colour, {r['depth_mode']} {w}×{h} → "
        f"{r['color_res']}, {r['frames']} ward scenes, median of {r['repeat']} calls "
        f"({r['sdk_repeat']} for the SDK) "
        f"({r['cores']} cores, load {r['load']:.1f} at the start)\n\n"
        "| implementation | ms | how | identical to SDK | mean / max abs diff (mm) | edges identical | "
        "edges mean / max (mm) |\n|---|---|---|---|---|---|---|"
    )
    rows = [
        _row(
            "Azure Kinect SDK 1.4.2 `transformed_depth`",
            r["sdk_ms"],
            "OpenGL, Mesa llvmpipe under Xvfb",
            None,
        ),
        _row(
            "ours (`kinect_occlusion.depth`)",
            r["ours_ms"],
            f"numpy, 1 thread ({r['ours_cpu_ms']:.1f} ms CPU; tables once: {r['ours_build_ms']:.0f} ms)",
            r["ours_vs_sdk"],
        ),
        _row(
            "open-azure-kinect 0.1.0",
            r["peer_ms"],
            "OpenCV projectPoints + NN forward warp",
            r["peer_vs_sdk"],
        ),
    ]
    return "\n".join([head, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--depth-mode", default="NFOV_UNBINNED", choices=sorted(DEPTH_MODES))
    parser.add_argument("--color-res", default="720P")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per implementation")
    parser.add_argument("--sdk-repeat", type=int, default=5, help="timed SDK calls (seconds each on Mesa)")
    parser.add_argument("--frames", type=int, default=3, help="scenes compared for accuracy")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    result = run(args.depth_mode, args.color_res, args.repeat, args.frames, args.sdk_repeat)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
