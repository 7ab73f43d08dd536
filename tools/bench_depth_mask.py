#!/usr/bin/env python3
"""The occlusion mask in depth geometry (``fuser.depth_mask``): per-frame cost with the tables cached
per calibration (as the fuser runs it) vs rebuilding them every frame, and the wire cost of the message.

python tools/bench_depth_mask.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools" / "k4a"))

from scenes import ward_scene  # noqa: E402

from kinect_occlusion import messages as m  # noqa: E402
from kinect_occlusion.depth.device_calibration import device_calibration_json  # noqa: E402
from kinect_occlusion.depth.mask import DepthMasker, build_transform, depth_geometry_mask  # noqa: E402
from kinect_occlusion.sources.k4a_formats import COLOR_RESOLUTIONS, DEPTH_MODES  # noqa: E402

CASES = (("NFOV_UNBINNED", "720P"), ("NFOV_2X2BINNED", "720P"), ("WFOV_2X2BINNED", "1080P"))


def median_ms(fn, repeat: int) -> tuple[float, float]:
    """Median wall and CPU ms of ``repeat`` calls (on a shared host CPU time is ours alone)."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def run_case(depth_mode: str, color_res: str, repeat: int) -> dict:
    """ms per frame: cached tables, tables rebuilt (the baseline), and encode + decode of the result."""
    text = device_calibration_json()
    (dw, dh), (cw, ch) = DEPTH_MODES[depth_mode], COLOR_RESOLUTIONS[color_res]
    depth = ward_scene(dw, dh, seed=1)
    mask = np.random.default_rng(0).integers(0, 2, (ch, cw), dtype=np.uint8)
    masker = DepthMasker()
    out = masker(text, mask, depth, m.DEPTH_MASK_UNKNOWN)  # builds the tables once
    cached, cached_cpu = median_ms(lambda: masker(text, mask, depth, m.DEPTH_MASK_UNKNOWN), repeat)

    def rebuilt() -> None:
        transform = build_transform(text, depth.shape, mask.shape)
        depth_geometry_mask(transform, mask, depth, m.DEPTH_MASK_UNKNOWN)

    rebuilt_ms, rebuilt_cpu = median_ms(rebuilt, max(2, repeat // 3))
    msg = m.DepthMask(camera="bed1", frame_id=1, ts_us=1, mask=out, fused=True)
    wire, _ = median_ms(lambda: m.decode([bytes(f) for f in m.encode(msg)]), repeat)
    return {
        "case": f"{depth_mode} {dw}×{dh} ← {color_res}",
        "cached_ms": round(cached, 1),
        "cached_cpu_ms": round(cached_cpu, 1),
        "rebuilt_every_frame_ms": round(rebuilt_ms, 1),
        "rebuilt_every_frame_cpu_ms": round(rebuilt_cpu, 1),
        "speedup_cpu": round(rebuilt_cpu / max(cached_cpu, 1e-3), 1),
        "encode_decode_ms": round(wire, 2),
        "unknown_share": round(float((out == m.DEPTH_MASK_UNKNOWN).mean()), 3),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=10)
    args = p.parse_args()
    rows = [run_case(d, c, args.repeat) for d, c in CASES]
    print("| case | cached tables ms wall / CPU | rebuilt every frame ms wall / CPU | ratio (CPU) |", end="")
    print(" encode+decode ms | unknown share |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['cached_ms']} / {r['cached_cpu_ms']} "
            f"| {r['rebuilt_every_frame_ms']} / {r['rebuilt_every_frame_cpu_ms']} | {r['speedup_cpu']}× "
            f"| {r['encode_decode_ms']} | {r['unknown_share']} |"
        )
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
