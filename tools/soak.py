#!/usr/bin/env python3
"""Soak test (not part of the test run): replay a recording in a loop for N minutes and report the
RSS of every process at start and end, restarts, drops and errors.

    python tools/soak.py [--minutes 10] [--recording recordings/sample.mkv] [--config config.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kinect_occlusion import messages as m  # noqa: E402
from kinect_occlusion.bus import Subscriber  # noqa: E402


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))
    except (FileNotFoundError, StopIteration):
        return None


def snapshot(backend: str, camera: str, seconds: float = 3.0) -> dict[str, m.Status]:
    """Newest Status per worker (including the supervisor)."""
    seen: dict[str, m.Status] = {}
    with Subscriber(backend, camera, [m.TOPIC_STATUS], rcvhwm=256) as sub:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in sub.drain(100):
                seen[msg.worker] = msg  # type: ignore[union-attr]
    return seen


def table(seen: dict[str, m.Status], supervisor_pid: int) -> dict[str, dict]:
    rows = {"supervisor": {"pid": supervisor_pid, "rss_mb": rss_mb(supervisor_pid)}}
    for name, st in sorted(seen.items()):
        if name == "supervisor":
            continue
        rows[name] = {
            "pid": st.pid,
            "rss_mb": rss_mb(st.pid),
            "frames_out": st.info.get("frames_out"),
            "dropped": st.info.get("dropped"),
            "errors": st.info.get("errors"),
        }
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--recording", default=str(ROOT / "recordings" / "sample.mkv"))
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--json", default=None, help="write the report here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ko-soak-", dir="/tmp"))
    cfg = yaml.safe_load(Path(args.config).read_text())
    cfg.setdefault("bus", {}).update(frontend=f"ipc://{tmp}/in", backend=f"ipc://{tmp}/out")
    cfg.setdefault("deeplab", {})["checkpoint"] = str(
        (Path(args.config).parent / cfg["deeplab"].get("checkpoint", "recordings/demo_model.pt")).resolve()
    )
    cfg_path = tmp / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    camera = cfg.get("camera", {}).get("id", "bed1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kinect_occlusion",
            "replay",
            args.recording,
            "--loop",
            "--config",
            str(cfg_path),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "soak.log", "w"),
    )
    time.sleep(30)
    start = table(snapshot(f"ipc://{tmp}/out", camera), proc.pid)
    print("start:", json.dumps(start, indent=1), flush=True)
    time.sleep(max(0.0, args.minutes * 60 - 30))
    seen = snapshot(f"ipc://{tmp}/out", camera)
    end = table(seen, proc.pid)
    sup = seen.get("supervisor")
    restarts = {k: v["restarts"] for k, v in sup.info["workers"].items()} if sup else {}
    os.kill(proc.pid, signal.SIGTERM)
    code = proc.wait(60)
    report = {
        "minutes": args.minutes,
        "start": start,
        "end": end,
        "restarts": restarts,
        "exit_code": code,
        "log": str(tmp / "soak.log"),
    }
    print("end:", json.dumps(end, indent=1))
    print("restarts:", restarts, "exit code:", code)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
