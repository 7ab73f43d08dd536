#!/usr/bin/env python3
"""A ward: one shared server (+ N bedsides over tcp:// with CURVE) vs N all-in-one pipelines.

    python tools/bench_ward.py [--cameras 1 2 4 8] [--seconds 15] [--warmup 5] [--fps 5]
                               [--size 640 360] [--shared-bus tcp-curve [tcp-curve-old ...]]
                               [--triton-cameras 4] [--no-triton] [--quick]
                               [--checkpoint recordings/demo_model.pt] [--json OUT.json]

In one run, per camera count N: N synthetic cameras at ``--fps`` served by (a) ``run --role server``
plus N ``run --role bedside`` processes on a tcp:// bus with CURVE (the README's ward) and (b) N plain
``run`` pipelines, each on its own ipc:// bus. Both use the demo checkpoint (``make demo``'s model,
onnxruntime on CPU) and superpixel partitions (no SAM weights here). After every camera has produced a
mask and ``--warmup`` seconds more, a window of ``--seconds`` measures: per-camera masks/s (and the
share fused with a partition), capture→mask p50/p95 (arrival here minus the frame's ``origin_us``),
CPU-seconds per mask (utime+stime of every process of the run's sessions over the window, from /proc),
summed RSS and PSS (sampled every second; peak). Then, at ``--triton-cameras``, the shared server with
``deeplab.runtime: triton`` against a real tritonserver (``make triton-venv``; python backend over
onnxruntime, its CPU time included) vs ``deeplab.runtime: onnx``, back to back.

Every process it starts runs in its own session and is stopped (SIGTERM, then SIGKILL) on exit,
error or Ctrl-C. Logs of every process go to a temporary folder, kept (and named) on an error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

CLK_TCK = os.sysconf("SC_CLK_TCK")
MIN_FREE_MB = 1500  # a configuration stops early when the host's available memory falls below this


# ---------------------------------------------------------------------- pure: statistics


@dataclass
class Window:
    """What a measuring window saw: per camera, the latency (ms) of every mask, and how many were fused."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    fused: dict[str, int] = field(default_factory=dict)
    coarse_ms: list[float] = field(default_factory=list)

    def add_mask(self, camera: str, latency_ms: float, fused: bool) -> None:
        self.latencies.setdefault(camera, []).append(latency_ms)
        self.fused[camera] = self.fused.get(camera, 0) + int(fused)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, NaN for no values."""
    return float(np.percentile(values, q)) if values else float("nan")


def summarise(win: Window, cameras: list[str], seconds: float, cpu_s: float, mem: dict) -> dict:
    """One table row from a window: per-camera masks/s (mean and slowest camera), fused share,
    latency p50/p95 over all masks, CPU-seconds per mask, peak memory. A camera with no mask counts 0."""
    counts = [len(win.latencies.get(c, [])) for c in cameras]
    total = sum(counts)
    every = [v for c in cameras for v in win.latencies.get(c, [])]
    return {
        "cameras": len(cameras),
        "masks_per_s_per_camera": round(total / seconds / len(cameras), 2),
        "slowest_camera_per_s": round(min(counts) / seconds, 2),
        "fused_share": round(sum(win.fused.get(c, 0) for c in cameras) / total, 2) if total else 0.0,
        "p50_ms": round(percentile(every, 50), 1),
        "p95_ms": round(percentile(every, 95), 1),
        "coarse_p50_ms": round(percentile(win.coarse_ms, 50), 1),
        "cpu_s_per_mask": round(cpu_s / total, 3) if total else float("nan"),
        "cpu_cores_busy": round(cpu_s / seconds, 2),
        "rss_peak_mb": round(mem.get("rss", 0.0)),
        "pss_peak_mb": round(mem.get("pss", 0.0)),
    }


def cpu_seconds(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds spent between two snapshots of ``pid → utime+stime ticks``: a process that started in
    between counts from 0; one that ended in between is lost (the bench keeps processes alive)."""
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items() if t >= before.get(pid, 0))
    return ticks / CLK_TCK


def ratios(shared: dict, separate: dict) -> dict:
    """shared/separate for the figures where a ratio reads well."""
    keys = ("masks_per_s_per_camera", "p50_ms", "p95_ms", "cpu_s_per_mask", "rss_peak_mb", "pss_peak_mb")
    out = {}
    for k in keys:
        a, b = shared.get(k), separate.get(k)
        ok = (
            isinstance(a, int | float)
            and isinstance(b, int | float)
            and b
            and np.isfinite(a)
            and np.isfinite(b)
        )
        out[k] = round(a / b, 2) if ok else float("nan")
    return out


# ---------------------------------------------------------------------- /proc


def session_pids(sessions: set[int], roots: tuple[int, ...] = ()) -> list[int]:
    """Every live process whose session id is one of ``sessions`` (our runs start new sessions), and
    ``roots`` with all their descendants (tritonserver and its python-backend stubs)."""
    parent, session = {}, {}
    for entry in os.scandir("/proc"):
        stat = _stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None:
            parent[int(entry.name)], session[int(entry.name)] = int(stat[1]), int(stat[3])
    return [pid for pid in parent if session[pid] in sessions or _under(pid, set(roots), parent)]


def _under(pid: int, roots: set[int], parent: dict[int, int]) -> bool:
    """Whether ``pid`` is one of ``roots`` or descends from one."""
    seen = set()
    while pid > 1 and pid not in seen:
        if pid in roots:
            return True
        seen.add(pid)
        pid = parent.get(pid, 0)
    return False


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0]), or None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """utime+stime (clock ticks) of each pid still alive."""
    out = {}
    for pid in pids:
        stat = _stat(pid)
        if stat is not None:
            out[pid] = int(stat[11]) + int(stat[12])
    return out


def memory_mb(pids: list[int]) -> dict[str, float]:
    """Summed RSS and PSS (MB) of ``pids`` (PSS shares each page among the processes mapping it)."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return {"rss": rss / 1024, "pss": pss / 1024}


def available_mb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


# ---------------------------------------------------------------------- configs


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def camera(i: int, args: argparse.Namespace) -> dict:
    """Camera ``bed{i}``: a synthetic scene (seed i) at ``--fps`` and ``--size``, colour only."""
    return {
        "id": f"bed{i}",
        "source": "synthetic",
        "synthetic_seed": i,
        "synthetic_size": list(args.size),
        "fps": args.fps,
        "depth_mode": "OFF",
    }


def common(args: argparse.Namespace, **deeplab) -> dict:
    return {
        "deeplab": {"checkpoint": str(Path(args.checkpoint).resolve()), "device": "cpu", **deeplab},
        "sam": {"partitioner": "superpixel"},
        "runtime": {"report_interval_s": 30.0},
    }


# --shared-bus choices over tcp:// + CURVE: the bus settings each one adds to the ward config
TCP_BUSES: dict[str, dict] = {
    "tcp-curve": {},  # today's defaults: JPEG colour (color_encoding auto), 256 KiB kernel buffers
    "tcp-curve-jpeg": {"color_encoding": "jpeg"},
    "tcp-curve-raw": {"color_encoding": "raw"},  # raw colour, bounded kernel buffers
    "tcp-curve-old": {"color_encoding": "raw", "tcp_buffer_kb": 0},  # the defaults before issue #12's fix
}


def ward_config(tmp: Path, n: int, args: argparse.Namespace, **deeplab) -> tuple[Path, str]:
    """A ward config (N cameras; ``--shared-bus``: tcp:// with CURVE as in the README, raw or JPEG
    colour, or ipc://); returns (path, backend endpoint)."""
    from kinect_occlusion.commands.keys import generate

    keys = tmp / "keys"
    if not keys.exists():
        generate(keys, ["client"], ["monitor"])
    bus_kind = getattr(args, "bus_kind", args.shared_bus[0])
    if bus_kind == "ipc":  # a diagnostic: the same server without tcp:// and CURVE
        bus = {"frontend": f"ipc://{tmp}/ward{n}-in", "backend": f"ipc://{tmp}/ward{n}-out"}
    else:
        bus = {
            "frontend": f"tcp://127.0.0.1:{free_port()}",
            "backend": f"tcp://127.0.0.1:{free_port()}",
            "curve": {"enabled": True, "keys_dir": str(keys)},
            **TCP_BUSES[bus_kind],
        }
    cfg = {
        "cameras": [camera(i, args) for i in range(1, n + 1)],
        "bus": {**bus, "bedside_status": f"ipc://{tmp}/{{camera}}-bedside"},
        **common(args, max_batch=max(n, 1), **deeplab),
    }
    path = tmp / f"ward{n}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, bus["backend"]


def single_config(tmp: Path, i: int, args: argparse.Namespace) -> tuple[Path, str]:
    """An all-in-one config for camera ``bed{i}`` on its own ipc:// bus; returns (path, backend)."""
    cfg = {
        "camera": camera(i, args),
        "bus": {"frontend": f"ipc://{tmp}/bed{i}-in", "backend": f"ipc://{tmp}/bed{i}-out"},
        **common(args),
    }
    path = tmp / f"bed{i}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, f"ipc://{tmp}/bed{i}-out"


# ---------------------------------------------------------------------- processes


class Runs:
    """Processes of one configuration, each in its own session, logging to a file; stopped on exit."""

    def __init__(self, logs: Path, extra: tuple = ()) -> None:
        self.logs, self.extra = logs, list(extra)
        self.procs: list[subprocess.Popen] = []
        self._files: list = []

    def start(self, name: str, cmd: list[str], env: dict | None = None) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        self._files.append(log)
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def cli(self, name: str, *args: str) -> subprocess.Popen:
        return self.start(name, [sys.executable, "-m", "kinect_occlusion", *args])

    def pids(self) -> list[int]:
        """Every live process of the run (its sessions), and the extra pids it counts with theirs."""
        return session_pids({p.pid for p in self.procs}, tuple(self.extra))

    def failed(self) -> list[int]:
        """pids of processes that already exited."""
        return [p.pid for p in self.procs if p.poll() is not None]

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every process (the supervisors stop their workers), then SIGKILL each session left."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:
            if session_pids({p.pid}):
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for f in self._files:
            f.close()

    def __enter__(self) -> Runs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------- measuring


def subscribers(backends: list[str], curve) -> list:
    from kinect_occlusion import messages as m
    from kinect_occlusion.bus import Subscriber

    topics = [m.TOPIC_OCCLUSION, m.TOPIC_COARSE]
    return [
        Subscriber(b, "*", topics, rcvhwm=1000, curve=curve if b.startswith("tcp") else None)
        for b in backends
    ]


def pump(subs: list, poller, win: Window | None, seen: set[str], timeout_ms: int = 100) -> None:
    """Take in what arrived within ``timeout_ms``; masks go to ``win`` (when measuring) and ``seen``."""
    from kinect_occlusion import messages as m

    ready = dict(poller.poll(timeout_ms))
    for sub in subs:
        if sub.sock not in ready:
            continue
        for msg in sub.drain(1):
            latency = (m.now_us() - msg.origin_us) / 1000
            if isinstance(msg, m.OcclusionMask):
                seen.add(msg.camera)
                if win is not None:
                    win.add_mask(msg.camera, latency, msg.fused)
            elif isinstance(msg, m.CoarseMask) and win is not None:
                win.coarse_ms.append(latency)


def measure(runs: Runs, backends: list[str], cameras: list[str], args, curve, label: str) -> dict:
    """Wait for a mask of every camera (+ warm-up), then measure one window; the table row."""
    import zmq

    subs = subscribers(backends, curve)
    poller = zmq.Poller()
    for s in subs:
        poller.register(s.sock, zmq.POLLIN)
    try:
        seen: set[str] = set()
        deadline = time.monotonic() + args.start_timeout
        while seen != set(cameras):
            _check_alive(runs, label)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{label}: no mask from {sorted(set(cameras) - seen)} in {args.start_timeout:.0f} s"
                )
            pump(subs, poller, None, seen)
        end = time.monotonic() + args.warmup
        while time.monotonic() < end:
            pump(subs, poller, None, seen)
        return window(runs, subs, poller, cameras, args, label)
    finally:
        for s in subs:
            s.close()


def window(runs: Runs, subs: list, poller, cameras: list[str], args, label: str) -> dict:
    """One measuring window of ``args.seconds``: masks, CPU over the window, memory sampled each second."""
    win, seen = Window(), set()
    before = cpu_ticks(runs.pids())
    start = time.monotonic()
    mem = {"rss": 0.0, "pss": 0.0}
    next_sample = start
    while (now := time.monotonic()) < start + args.seconds:
        if now >= next_sample:
            sample = memory_mb(runs.pids())
            mem = {k: max(mem[k], sample[k]) for k in mem}
            next_sample = now + 1.0
            _check_alive(runs, label)
            if available_mb() < MIN_FREE_MB:
                raise RuntimeError(f"{label}: host memory below {MIN_FREE_MB} MB available: stopped")
        pump(subs, poller, win, seen)
    seconds = time.monotonic() - start
    cpu = cpu_seconds(before, cpu_ticks(runs.pids()))
    return summarise(win, cameras, seconds, cpu, mem)


def _check_alive(runs: Runs, label: str) -> None:
    dead = runs.failed()
    if dead:
        raise RuntimeError(f"{label}: process {dead[0]} exited early (logs: {runs.logs})")


# ---------------------------------------------------------------------- configurations


def run_shared(tmp: Path, n: int, args, curve, label: str = "shared", extra: tuple = (), **deeplab) -> dict:
    """One server + N bedsides (``extra``: pids counted with the run's, e.g. tritonserver); the row."""
    cfg, back = ward_config(tmp, n, args, **deeplab)
    logs = tmp / f"{label}{n}"
    logs.mkdir()
    with Runs(logs, extra) as runs:
        runs.cli("server", "run", "--role", "server", "--config", str(cfg))
        for i in range(1, n + 1):
            runs.cli(f"bed{i}", "run", "--role", "bedside", "--camera", f"bed{i}", "--config", str(cfg))
        return measure(runs, [back], [f"bed{i}" for i in range(1, n + 1)], args, curve, f"{label} N={n}")


def run_separate(tmp: Path, n: int, args) -> dict:
    """N all-in-one pipelines; the measured row."""
    logs = tmp / f"separate{n}"
    logs.mkdir()
    backs = []
    with Runs(logs) as runs:
        for i in range(1, n + 1):
            cfg, back = single_config(logs, i, args)
            backs.append(back)
            runs.cli(f"bed{i}", "run", "--config", str(cfg))
        return measure(runs, backs, [f"bed{i}" for i in range(1, n + 1)], args, None, f"separate N={n}")


@contextmanager
def triton_serving(tmp: Path, args) -> Iterator[tuple[str, int]]:
    """A real tritonserver serving the checkpoint (export-triton --backend python); (url, pid)."""
    import triton_server

    if not triton_server.available():
        raise RuntimeError("no tritonserver: run 'make triton-venv' (or set KINECT_OCCLUSION_TRITON_VENV)")
    repo = tmp / "repo"
    done = subprocess.run(
        [sys.executable, "-m", "kinect_occlusion", "export-triton", "--checkpoint", args.checkpoint]
        + ["--out", str(repo), "--backend", "python", "--threads", str(args.triton_threads)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"export-triton failed: {done.stderr.strip()[-500:]}")
    with triton_server.TritonServer(repo, tmp / "tritonserver.log") as server:
        assert server.proc is not None
        yield server.url, server.proc.pid


def bench_triton(tmp: Path, args, curve) -> list[dict]:
    """The shared server at ``--triton-cameras``: onnx in-process, then triton (its CPU and memory added)."""
    n = args.triton_cameras
    args.bus_kind = args.shared_bus[0]
    progress(f"triton vs onnx, {n} cameras: onnx")
    rows = [{"runtime": "onnx", **run_shared(tmp, n, args, curve, "onnx", runtime="onnx")}]
    with triton_serving(tmp, args) as (url, pid):
        progress(f"triton vs onnx, {n} cameras: triton ({url})")
        row = run_shared(tmp, n, args, curve, "triton", [pid], runtime="triton", triton_url=url)
    return [*rows, {"runtime": "triton", **row}]


# ---------------------------------------------------------------------- main


def progress(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4, 8], help="camera counts N")
    p.add_argument("--seconds", type=float, default=15.0, help="measuring window per configuration")
    p.add_argument("--warmup", type=float, default=5.0, help="after every camera's first mask")
    p.add_argument("--start-timeout", type=float, default=180.0, help="longest wait for every first mask")
    p.add_argument("--fps", type=int, default=5, choices=[5, 15, 30])
    p.add_argument("--size", type=int, nargs=2, default=[640, 360], metavar=("W", "H"))
    p.add_argument("--checkpoint", default=str(ROOT / "recordings" / "demo_model.pt"))
    p.add_argument(
        "--shared-bus",
        choices=[*TCP_BUSES, "ipc"],
        nargs="+",
        default=["tcp-curve"],
        help="the shared server's bus, one or more (each measured against the same separate run): "
        "the README's ward (tcp:// + CURVE, today's defaults: JPEG colour, 256 KiB kernel buffers), "
        "tcp-curve-jpeg / -raw (colour forced), tcp-curve-old (raw colour, OS kernel buffers: the "
        "defaults before issue #12), or ipc:// without CURVE (one host)",
    )
    p.add_argument("--triton-cameras", type=int, default=4)
    p.add_argument("--triton-threads", type=int, default=2, help="onnxruntime threads in Triton's model")
    p.add_argument("--no-triton", action="store_true", help="skip the Triton vs ONNX part")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 and 2 cameras, 4 s windows")
    p.add_argument("--json", help="also write every row here")
    args = p.parse_args(argv)
    if args.quick:
        args.cameras, args.seconds, args.warmup, args.triton_cameras = [1, 2], 4.0, 2.0, 2
    if min(args.cameras) < 1 or args.triton_cameras < 1 or args.seconds <= 0:
        p.error("camera counts and --seconds must be positive")
    if not Path(args.checkpoint).is_file():
        p.error(f"no checkpoint at {args.checkpoint} (make demo-model)")
    return args


def bench_ward(tmp: Path, args, curve) -> list[dict]:
    """Shared vs separate per N, alternating which goes first (background load hits both alike)."""
    rows = []
    for k, n in enumerate(args.cameras):
        modes = [*args.shared_bus, "separate"]
        order = modes if k % 2 == 0 else modes[::-1]
        got = {}
        for mode in order:
            progress(f"{n} camera(s): {mode}")
            if mode == "separate":
                got[mode] = run_separate(tmp, n, args)
            else:
                args.bus_kind = mode
                got[mode] = run_shared(tmp, n, args, curve, label=f"shared-{mode}")
            progress(f"  {mode}: {json.dumps(got[mode])}")
        for bus in args.shared_bus:
            rows.append(
                {
                    "bus": bus,
                    "shared": got[bus],
                    "separate": got["separate"],
                    "ratio": ratios(got[bus], got["separate"]),
                }
            )
    return rows


def print_tables(ward: list[dict], triton: list[dict], args) -> None:
    print(
        f"\n{args.fps} fps synthetic {args.size[0]}×{args.size[1]} cameras, {args.seconds:.0f} s window, ",
        end="",
    )
    print(f"demo checkpoint ({Path(args.checkpoint).name}), superpixel partitions")
    print(
        "\n| N | mode | masks/s per camera (slowest) | fused | capture→mask p50 / p95 ms | "
        "capture→coarse p50 ms | CPU s per mask | cores busy | RSS peak MB | PSS peak MB |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k, row in enumerate(ward):
        fresh_n = k == 0 or ward[k - 1]["separate"] is not row["separate"]
        for mode in ("shared", "separate") if fresh_n else ("shared",):
            r = row[mode]
            name = f"shared {row['bus']}" if mode == "shared" else mode
            print(
                f"| {r['cameras']} | {name} | {r['masks_per_s_per_camera']} ({r['slowest_camera_per_s']}) | "
                f"{r['fused_share']:.0%} | {r['p50_ms']} / {r['p95_ms']} | {r['coarse_p50_ms']} | "
                f"{r['cpu_s_per_mask']} | {r['cpu_cores_busy']} | {r['rss_peak_mb']} | {r['pss_peak_mb']} |"
            )
    print("\n| N | shared bus | shared/separate masks/s | p50 / p95 | CPU s per mask | PSS |")
    print("|---:|---|---:|---:|---:|---:|")
    for row in ward:
        q = row["ratio"]
        print(
            f"| {row['shared']['cameras']} | {row['bus']} | {q['masks_per_s_per_camera']} | "
            f"{q['p50_ms']} / {q['p95_ms']} | {q['cpu_s_per_mask']} | {q['pss_peak_mb']} |"
        )
    if triton:
        print(
            f"\nShared server, {args.triton_cameras} cameras: deeplab.runtime onnx (in-process) vs triton "
            f"(tritonserver python backend, {args.triton_threads} onnxruntime threads; "
            "its CPU/memory included)"
        )
        print(
            "\n| runtime | masks/s per camera | capture→coarse p50 ms | capture→mask p50 / p95 ms | "
            "CPU s per mask | RSS peak MB | PSS peak MB |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in triton:
            print(
                f"| {r['runtime']} | {r['masks_per_s_per_camera']} | {r['coarse_p50_ms']} | {r['p50_ms']} / "
                f"{r['p95_ms']} | {r['cpu_s_per_mask']} | {r['rss_peak_mb']} | {r['pss_peak_mb']} |"
            )
        added = triton[1]["coarse_p50_ms"] - triton[0]["coarse_p50_ms"]
        print(
            f"\nTriton's added capture→coarse latency (p50): {added:+.1f} ms per frame; "
            f"throughput triton/onnx {ratios(triton[1], triton[0])['masks_per_s_per_camera']}"
        )


def _interrupt(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM: every process the bench started is stopped on the way out."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from kinect_occlusion.bus import load_curve

    tmp = Path(tempfile.mkdtemp(prefix="bench_ward_"))
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell may start it with SIGINT ignored
        signal.signal(sig, _interrupt)
    try:
        ward_config(tmp, 1, args)  # makes the CURVE keys
        curve = load_curve(
            str(tmp / "keys"), "server.key_secret", "monitor.key_secret", "authorized", server=False
        )
        ward = bench_ward(tmp, args, curve)
        triton = [] if args.no_triton else bench_triton(tmp, args, curve)
        print_tables(ward, triton, args)
        if args.json:
            Path(args.json).write_text(json.dumps({"ward": ward, "triton": triton}, indent=2))
    except KeyboardInterrupt:
        progress(f"interrupted: every process stopped (logs kept in {tmp})")
        return 130
    except RuntimeError as exc:
        progress(f"error: {exc} (logs kept in {tmp})")
        return 2
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
