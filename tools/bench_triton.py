#!/usr/bin/env python3
"""Coarse model through Triton Inference Server vs in-process ONNX Runtime: latency and throughput.

    python tools/bench_triton.py [--checkpoint recordings/demo_model.pt] [--frames 30] [--clients 1 4]
                                 [--threads 2] [--json OUT.json]

In one run: ``export-triton --backend python`` writes a repository into a temporary folder, a real
tritonserver (``make triton-venv``) serves it on CPU, and the same 1280×720 frames go through
``TritonCoarsePredictor`` (one gRPC client per concurrent client) and ``OnnxCoarsePredictor`` (one
in-process session shared by the client threads), each runtime with ``--threads`` onnxruntime threads.
Per client count: per-frame latency p50/p95 (whole ``predict``: letterbox, network, un-letterbox) and
the throughput of all clients together. The runtimes take turns (A B B A, half the frames a turn), so
background load hits them alike. Needs the ``triton`` extra (tritonclient) in this Python.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=str(ROOT / "recordings" / "demo_model.pt"))
    p.add_argument("--frames", type=int, default=30, help="frames per client (after 3 warm-up frames)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads, both runtimes")
    p.add_argument("--queue-timeout-ms", type=int, default=5000, help="Triton rejects requests queued longer")
    p.add_argument("--json", help="also write the figures here")
    return p.parse_args(argv)


def run_clients(predictors: list, frames: list[np.ndarray]) -> tuple[list[float], float, int]:
    """Each predictor in its own thread predicts every frame; (latencies in ms, wall seconds, errors)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client(pred) -> None:
        mine, failed = [], 0
        for rgb in frames:
            t0 = time.perf_counter()
            try:
                pred.predict(rgb, None)
            except RuntimeError:  # a request Triton rejected (queue timeout): counted, as in the worker
                failed += 1
                continue
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=client, args=(p,)) for p in predictors]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - t0, errors[0]


def summary(runtime: str, clients: int, lat: list[float], wall: float, errors: int) -> dict:
    """One table row: latency p50/p95 and frames/s of all clients together."""
    return {
        "runtime": runtime,
        "clients": clients,
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "fps": round(len(lat) / wall, 1),
        "errors": errors,
    }


def compare(runtimes: dict[str, list], frames: list[np.ndarray]) -> list[dict]:
    """Warm up each runtime, then time them in A B B A order (half the frames a turn), merged."""
    for predictors in runtimes.values():
        run_clients(predictors, frames[:3])
    half = len(frames) // 2
    names = list(runtimes)
    lat: dict[str, list[float]] = {n: [] for n in names}
    wall = dict.fromkeys(names, 0.0)
    errors = dict.fromkeys(names, 0)
    for name in [*names, *reversed(names)]:
        turn_lat, turn_wall, turn_errors = run_clients(runtimes[name], frames[:half])
        lat[name] += turn_lat
        wall[name] += turn_wall
        errors[name] += turn_errors
    return [summary(n, len(runtimes[n]), lat[n], wall[n], errors[n]) for n in names]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import triton_server

    from kinect_occlusion.deeplab.model import load_checkpoint
    from kinect_occlusion.deeplab.onnx_export import OnnxCoarsePredictor
    from kinect_occlusion.deeplab.triton import TritonCoarsePredictor
    from kinect_occlusion.deeplab.triton_repo import TritonModelSpec, write_repository

    loaded = load_checkpoint(args.checkpoint)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (720, 1280, 3), np.uint8) for _ in range(args.frames)]
    local = OnnxCoarsePredictor(loaded, threads=args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        spec = TritonModelSpec(
            input_size=loaded.input_size,
            backend="python",
            threads=args.threads,
            queue_timeout_us=args.queue_timeout_ms * 1000,
        )
        write_repository(loaded, Path(tmp) / "repo", spec)
        with triton_server.TritonServer(Path(tmp) / "repo", Path(tmp) / "tritonserver.log") as server:
            for n in args.clients:
                remote = [TritonCoarsePredictor(loaded, server.url, timeout_ms=30000) for _ in range(n)]
                runtimes = {"onnxruntime in-process": [local] * n, "triton python backend": remote}
                rows += compare(runtimes, frames)
                for r in remote:
                    r.close()
    print_table(rows, loaded.input_size, args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def print_table(rows: list[dict], size: int, args: argparse.Namespace) -> None:
    print(f"\n1280×720 frames, {size}×{size} model input, {args.frames} frames per client, ", end="")
    print(f"{args.threads} onnxruntime threads, Triton queue timeout {args.queue_timeout_ms} ms")
    print("\n| runtime | clients | p50 ms/frame | p95 ms/frame | frames/s (all clients) | rejected |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = [r["runtime"], r["clients"], r["p50_ms"], r["p95_ms"], r["fps"], r["errors"]]
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
