#!/usr/bin/env python3
"""Depth→colour on this CPU: ours (compiled and numpy) vs the Azure Kinect SDK (OpenGL on Mesa/Xvfb)
vs open-azure-kinect.

    python tools/bench_depth.py [--depth-mode NFOV_UNBINNED WFOV_2X2BINNED] [--color-res 720P]
                                [--repeat 30] [--sdk-repeat 5] [--frames 3] [--no-sdk] [--json OUT]
                                                                            (or: make bench-depth)

One run, one machine: each implementation transforms the same depth frames (tools/k4a/scenes.py:
a ward bed with a patient, an arm over them, dropouts and noise) with the same realistic calibration
(kinect_occlusion/depth/device_calibration.py). Ours runs both ways in this process, alternating
numpy and compiled (numba) calls, so their ratio holds on a loaded host; the two outputs must be
bit-identical (else exit 1). Times are medians of ``--repeat`` calls after a warm-up (the SDK's and
the peer's measured inside their own process, in .venv-k4a). Accuracy is against the SDK's
``transformed_depth``: share of identical pixels, mean/max |Δ| mm overall and on depth edges; for
WFOV also outside the SDK engine's left-border blocks (tools/k4a/compare.py). Prints markdown.
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

from compare import compare_depth, left_border_blocks  # noqa: E402
from scenes import ward_scene  # noqa: E402
from sdk_client import peer_transform, sdk_transform  # noqa: E402

from kinect_occlusion.depth.calibration import parse_calibration  # noqa: E402
from kinect_occlusion.depth.device_calibration import device_calibration_json  # noqa: E402
from kinect_occlusion.depth.transform import DepthToColor  # noqa: E402
from kinect_occlusion.sources.k4a_formats import DEPTH_MODES  # noqa: E402


def time_ours(transforms: dict[str, DepthToColor], depth: np.ndarray, repeat: int) -> dict[str, dict]:
    """Median wall and CPU ms of each transform, calls alternating between them (after one warm-up)."""
    wall: dict[str, list[float]] = {name: [] for name in transforms}
    cpu: dict[str, list[float]] = {name: [] for name in transforms}
    for t in transforms.values():
        t(depth)
    for _ in range(repeat):
        for name, t in transforms.items():
            t0, c0 = time.perf_counter(), time.process_time()
            t(depth)
            wall[name].append((time.perf_counter() - t0) * 1000)
            cpu[name].append((time.process_time() - c0) * 1000)
    return {n: {"ms": float(np.median(wall[n])), "cpu_ms": float(np.median(cpu[n]))} for n in transforms}


def build_ours(text: str, depth_mode: str, color_res: str) -> tuple[dict[str, DepthToColor], dict]:
    """The numpy and compiled transforms, and how long building each took (ms; compiled: + warm-up)."""
    cal = parse_calibration(text, depth_mode, color_res)
    transforms, build = {}, {}
    for name, compiled in (("numpy", False), ("compiled", True)):
        t0 = time.perf_counter()
        transforms[name] = DepthToColor.build(cal, compiled=compiled)
        build[name] = (time.perf_counter() - t0) * 1000
    return transforms, build


def _stats(images, refs, blocks=None) -> dict:
    per = [compare_depth(img, ref) for img, ref in zip(images, refs, strict=True)]
    out = {
        k: float(np.mean([p[k] for p in per])) if "max" not in k else max(p[k] for p in per) for k in per[0]
    }
    if blocks is not None:
        out["blocks_share"] = float(np.mean([b.mean() for b in blocks]))
        same = [(img == ref)[~b].mean() for img, ref, b in zip(images, refs, blocks, strict=True)]
        out["identical_outside_blocks"] = float(np.mean(same))
    return out


def _row(name: str, t: dict, note: str, stats: dict | None) -> str:
    ms = f"{t['ms']:.1f}" + ("" if t["cpu_ms"] is None else f" / {t['cpu_ms']:.1f}")
    if stats is None:
        return f"| {name} | {ms} | {note} | {'reference' if t['cpu_ms'] is None else '–'} | – | – | – |"
    return (
        f"| {name} | {ms} | {note} | {stats['identical'] * 100:.3f} % | "
        f"{stats['mean_abs_mm']:.2f} / {stats['max_abs_mm']:.0f} | {stats['edge_identical'] * 100:.2f} % | "
        f"{stats['edge_mean_abs_mm']:.1f} / {stats['edge_max_abs_mm']:.0f} |"
    )


def run(depth_mode: str, color_res: str, repeat: int, frames: int, sdk_repeat: int | None) -> dict:
    """Time and compare the implementations (``sdk_repeat`` None: ours only); returns every figure."""
    text = device_calibration_json()
    depth = np.stack([ward_scene(*DEPTH_MODES[depth_mode], seed=s) for s in range(frames)])
    transforms, build = build_ours(text, depth_mode, color_res)
    times = time_ours(transforms, depth[0], repeat)
    ours = [transforms["compiled"](d) for d in depth]
    if not all(np.array_equal(o, transforms["numpy"](d)) for o, d in zip(ours, depth, strict=True)):
        raise SystemExit(f"{depth_mode}: the compiled output differs from the numpy path's")
    result = {
        **{"depth_mode": depth_mode, "color_res": color_res, "frames": frames, "repeat": repeat},
        **{"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        **{"load": os.getloadavg()[0], "sdk_repeat": sdk_repeat, "build_ms": build, "ours": times},
    }
    if sdk_repeat is None:
        return result
    sdk = sdk_transform(text, depth_mode, color_res, depth, repeat=sdk_repeat)
    peer = peer_transform(text, depth_mode, color_res, depth, repeat=repeat)
    blocks = None
    if depth_mode.startswith("WFOV"):
        corr = [transforms["compiled"].correspondences(d) for d in depth]
        blocks = [left_border_blocks(u, v, ok, ours[0].shape) for u, v, _, ok in corr]
    result.update(
        sdk_ms=float(np.median(sdk["ms"])),
        peer_ms=float(np.median(peer["ms"])),
        ours_vs_sdk=_stats(ours, sdk["transformed"], blocks),
        peer_vs_sdk=_stats(list(peer["transformed"]), sdk["transformed"]),
    )
    return result


def table(r: dict) -> str:
    w, h = DEPTH_MODES[r["depth_mode"]]
    o, b = r["ours"], r["build_ms"]
    ratio = o["numpy"]["cpu_ms"] / o["compiled"]["cpu_ms"]
    sdk_calls = "" if r["sdk_repeat"] is None else f" ({r['sdk_repeat']} for the SDK)"
    head = (
        f"Depth→colour, {r['depth_mode']} {w}×{h} → {r['color_res']}, {r['frames']} ward scenes, median of "
        f"{r['repeat']} calls{sdk_calls} ({r['cores']} cores, load "
        f"{r['load']:.1f} at the start); compiled = numpy output, bit for bit; compiled {ratio:.1f}× "
        f"faster (CPU time, same process)\n\n"
        "| implementation | ms wall / CPU | how | identical to SDK | mean / max abs diff (mm) | "
        "edges identical | edges mean / max (mm) |\n|---|---|---|---|---|---|---|"
    )
    stats = r.get("ours_vs_sdk")
    rows = [
        _row("ours, compiled", o["compiled"], f"numba (build + warm-up {b['compiled']:.0f} ms)", stats),
        _row("ours, numpy", o["numpy"], f"numpy (tables: {b['numpy']:.0f} ms)", stats),
    ]
    if stats is not None:
        sdk = {"ms": r["sdk_ms"], "cpu_ms": None}
        rows.insert(0, _row("Azure Kinect SDK 1.4.2", sdk, "OpenGL, Mesa llvmpipe under Xvfb", None))
        peer = {"ms": r["peer_ms"], "cpu_ms": None}
        rows.append(_row("open-azure-kinect 0.1.0", peer, "OpenCV projectPoints + NN warp", r["peer_vs_sdk"]))
    lines = [head, *rows]
    if stats is not None and "blocks_share" in stats:
        lines.append(
            f"\nOutside the SDK engine's left-border blocks ({stats['blocks_share'] * 100:.2f} % of the "
            f"image): ours identical to the SDK on {stats['identical_outside_blocks'] * 100:.3f} %."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--depth-mode", nargs="+", default=["NFOV_UNBINNED", "WFOV_2X2BINNED"], choices=sorted(DEPTH_MODES)
    )
    parser.add_argument("--color-res", default="720P")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per implementation")
    parser.add_argument("--sdk-repeat", type=int, default=5, help="timed SDK calls (seconds each on Mesa)")
    parser.add_argument("--frames", type=int, default=3, help="scenes compared for accuracy")
    parser.add_argument("--no-sdk", action="store_true", help="ours only: numpy vs compiled (no .venv-k4a)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    results = []
    for mode in args.depth_mode:
        sdk_repeat = None if args.no_sdk else args.sdk_repeat
        results.append(run(mode, args.color_res, args.repeat, args.frames, sdk_repeat))
        print(table(results[-1]) + "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
