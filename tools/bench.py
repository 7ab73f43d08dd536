#!/usr/bin/env python3
"""The benchmark suite: runs every stage's benchmark (each printing ratios against a baseline
measured in the same process), then writes ``docs/BENCHMARKS.md`` and ``docs/benchmarks.json``.

    python tools/bench.py [--out docs/BENCHMARKS.md] [--only transport,vote,...] [--device cpu]

Sections and their baselines:
  transport  1280×720 RGB through our bus (ipc/tcp)       vs imagezmq PUB/SUB (tcp)
  vote       vectorised soft vote, 1280×720, 300 segments  vs the naive per-segment loop
  deeplab    coarse model ms/frame at 512×512 per backbone vs eager fp32
  partition  SAM vit_b (encoder + timed decoder batches, extrapolated), guided prompts, superpixels
             vs SAM's reference AMG at 40×40
  e2e        replay at camera rate with the configured model: capture→fused latency, masks/s, partition age
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"

SECTIONS = {
    "transport": (
        "Transport (1280×720 RGB, publisher at 30 fps and at max rate)",
        ["bench_transport.py", "--frames", "150", "--fps", "30"],
    ),
    "transport_max": ("Transport at maximum rate", ["bench_transport.py", "--frames", "200", "--fps", "0"]),
    "vote": ("Soft vote (1280×720, 300 segments)", ["bench_vote.py"]),
    "deeplab": ("Coarse model (DeepLabV3+, 512×512, batch 1)", ["bench_deeplab.py"]),
    "deeplab_lite": (
        "Coarse model, lite head (the demo model's), 512×512",
        [
            "bench_deeplab.py",
            "--heads",
            "lite",
            "--backbones",
            "mobilenet_v3_large",
            "resnet18",
            "--no-compile",
        ],
    ),
    "partition": ("Partition (SAM vit_b, guided prompts, superpixels)", ["bench_partition.py"]),
    "e2e": (
        "End to end (bundled 5 fps sample at camera rate, demo model, superpixel partition)",
        ["bench_e2e.py", "--frames", "150"],
    ),
    "e2e30": (
        "End to end at 30 fps (synthetic 1280×720 recording, demo model, superpixel partition)",
        ["bench_e2e.py", "--record-fps", "30", "--frames", "300"],
    ),
    "viewer": (
        "Live view cost (synthetic 640×360 at 15 fps; 0, 1 and 5 browser pages)",
        ["bench_viewer.py", "--size", "640x360", "--seconds", "10", "--rounds", "4"],
    ),
}


def machine() -> str:
    """One line describing this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name(0)}"
        gpu += f", torch {torch.__version__}"
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}{gpu}"


def run_section(name: str, args: list[str], extra: list[str]) -> dict:
    """Run one benchmark script; keep its printed table and its JSON."""
    out_json = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".json")[1])
    cmd = [sys.executable, str(TOOLS / args[0]), *args[1:], *extra, "--json", str(out_json)]
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.monotonic()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    print(res.stdout[-4000:], flush=True)
    data = None
    if out_json.stat().st_size:
        data = json.loads(out_json.read_text())
    out_json.unlink(missing_ok=True)
    return {
        "command": " ".join(
            [
                "python",
                *[str(Path(c).relative_to(ROOT)) if str(c).startswith(str(ROOT)) else c for c in cmd[1:-2]],
            ]
        ),
        "stdout": res.stdout.strip(),
        "stderr_tail": res.stderr.strip()[-1500:],
        "returncode": res.returncode,
        "seconds": round(time.monotonic() - t0, 1),
        "data": data,
    }


def markdown(results: dict, when: str, desc: str) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Measured {when} on: {desc}.",
        "",
        "Every figure comes with the baseline it was compared against, measured in the same process "
        "(or the same run). Made by `python tools/bench.py`; raw numbers in `docs/benchmarks.json`. "
        "CUDA figures (H100): `docs/BENCHMARKS_GPU.md`.",
        "",
    ]
    for name, r in results.items():
        title = SECTIONS[name][0]
        lines += [
            f"## {title}",
            "",
            f"`{r['command']}` ({r['seconds']} s, exit {r['returncode']})",
            "",
            "```",
            r["stdout"] or "(no output)",
            "```",
            "",
        ]
        if r["returncode"] != 0 and r["stderr_tail"]:
            lines += ["stderr (tail):", "", "```", r["stderr_tail"], "```", ""]
    return "\n".join(lines)


KEEP_MARKER = "<!-- sections below: other tools; kept by tools/bench.py -->"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    ap.add_argument("--device", default=None, help="pass --device to the model benchmarks (cpu|cuda)")
    args = ap.parse_args()
    results = {}
    for name in args.only.split(","):
        extra = (
            ["--device", args.device]
            if args.device and name in ("deeplab", "deeplab_lite", "partition")
            else []
        )
        results[name] = run_section(name, SECTIONS[name][1], extra)
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    desc = machine()
    out = Path(args.out)
    # Sections measured by other tools (tools/bench_depth.py) follow KEEP_MARKER and are kept
    kept = out.read_text().partition(KEEP_MARKER) if out.exists() else ("", "", "")
    out.write_text(markdown(results, when, desc) + (kept[1] + kept[2] if kept[1] else ""))
    out.with_name("benchmarks.json").write_text(
        json.dumps({"when": when, "machine": desc, "results": results}, indent=2, default=str)
    )
    print(f"wrote {out} and {out.with_name('benchmarks.json')}")
    return 0 if all(r["returncode"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
