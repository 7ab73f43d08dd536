"""Helpers for tests that run the real pipeline: tiny models, configs, processes, subscribers."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import yaml

from kinect_occlusion import messages as m
from kinect_occlusion.bus import Subscriber
from kinect_occlusion.runtime.stages import NAMES

ROOT = Path(__file__).resolve().parents[2]


_CHECKPOINTS: dict[tuple[str, int], Path] = {}  # built once per test process, copied for each test


def tiny_checkpoint(path: Path, backbone: str = "resnet18", input_size: int = 64) -> Path:
    """A randomly-initialised DeepLabV3+ checkpoint in our format (fast on CPU at 64×64); the same
    bytes every time (seeded), so it is built once per test process and copied to ``path``."""
    import torch

    from kinect_occlusion.deeplab.model import build_model, save_checkpoint

    cached = _CHECKPOINTS.get((backbone, input_size))
    if cached is None or not cached.is_file():
        folder = tempfile.mkdtemp(prefix="ko-ckpt-")
        atexit.register(shutil.rmtree, folder, True)
        cached = _CHECKPOINTS[backbone, input_size] = Path(folder) / "model.pt"
        torch.manual_seed(0)
        model = build_model(backbone, num_classes=2)
        save_checkpoint(
            cached,
            model,
            input_size=input_size,
            mean=(0.485, 0.456, 0.406),
            std=(0.229, 0.224, 0.225),
            meta={"note": "random weights for tests"},
        )
    shutil.copyfile(cached, path)
    return path


def write_recording(path: Path, n_frames: int = 20, fps: int = 15, seed: int = 0) -> list[np.ndarray]:
    """A synthetic Azure Kinect recording (720p MJPG + NFOV binned depth); returns the RGB frames written."""
    from kinect_occlusion.sources.mkv_writer import K4AMkvWriter, synthetic_calibration_json
    from kinect_occlusion.sources.synthetic import SyntheticSource

    frames = []
    with (
        K4AMkvWriter(
            path,
            color_mode="MJPG_720P",
            depth_mode="NFOV_2X2BINNED",
            fps=fps,
            calibration_json=synthetic_calibration_json(),
        ) as writer,
        SyntheticSource(width=1280, height=720, fps=fps, seed=seed, n_frames=n_frames) as source,
    ):
        for frame in source:
            depth = frame.depth[::2, ::2][:288, :320] if frame.depth is not None else None
            if depth is not None and depth.shape != (288, 320):
                depth = np.zeros((288, 320), np.uint16)
            writer.write(frame.color, depth, None, frame.ts_us)
            frames.append(frame.color)
    return frames


def write_config(tmp: Path, ipc_dir: Path, checkpoint: Path | None, **sections) -> Path:
    """A config file for a test pipeline on private ipc endpoints; ``sections`` override/extend."""
    cfg = {
        "camera": {
            "id": "bed1",
            "source": "synthetic",
            "synthetic_size": [320, 240],
            "fps": 15,
            "depth_mode": "OFF",
            "rate": "realtime",
        },
        "bus": {
            "frontend": f"ipc://{ipc_dir}/in",
            "backend": f"ipc://{ipc_dir}/out",
            "bedside_status": f"ipc://{ipc_dir}/{{camera}}-bedside",
            "sndhwm": 8,
            "rcvhwm": 8,
        },
        "deeplab": {
            "checkpoint": str(checkpoint) if checkpoint else None,
            "allow_untrained": checkpoint is None,
            "device": "cpu",
            "threads": 1,
        },
        "sam": {"partitioner": "superpixel", "superpixel": {"method": "seeds", "n_segments": 100}},
        "runtime": {
            "heartbeat_s": 0.25,
            "report_interval_s": 1.0,
            "restart_backoff_s": [0.2, 1.0],
            "hang_timeout_s": 10.0,
            "startup_grace_s": 60.0,
            "shutdown_timeout_s": 5.0,
        },
    }
    for section, values in sections.items():
        merged = dict(cfg.get(section, {}))
        merged.update(values)
        cfg[section] = merged
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


# The runtime section of the fault tests (on top of write_config's 0.25 s heartbeats): 3 s of silence
# is a hang, and a crashed worker comes back after 0.2 s, then 0.4 s
FAULT_RUNTIME = {"restart_backoff_s": [0.2, 0.4], "hang_timeout_s": 3.0}


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``kinect-occlusion ARGS`` to completion; its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "kinect_occlusion", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(args: list[str], env: dict | None = None, log: Path | None = None) -> subprocess.Popen:
    """Start ``kinect-occlusion ARGS`` as a real process (its own process group); its output goes to
    a pipe, or to the file ``log`` (readable while it runs: for a daemon shared by several tests)."""
    full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    with log.open("w") if log else nullcontext() as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "kinect_occlusion", *args],
            cwd=ROOT,
            env=full_env,
            stdout=sink or subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> tuple[int, str]:
    """SIGTERM the pipeline and return (exit code, output); output is None when it went to a ``log`` file."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return -9, out
    return proc.returncode, out


def run_to_end(proc: subprocess.Popen, timeout: float = 120, what: str = "the command") -> tuple[int, str]:
    """Wait for ``proc`` (started by ``start``) to exit on its own: (exit code, output); fails the test
    with the output's tail, after killing it, if it runs past ``timeout``."""
    import pytest

    try:
        text, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        text, _ = proc.communicate()
        pytest.fail(f"{what} did not end within {timeout} s:\n{text[-3000:]}")
    return proc.returncode, text


def subscriber(ipc_dir: Path, topics=(m.TOPIC_OCCLUSION,), rcvhwm: int = 1000) -> Subscriber:
    return Subscriber(f"ipc://{ipc_dir}/out", "bed1", topics, rcvhwm=rcvhwm)


def collect(sub: Subscriber, seconds: float, until=None) -> list[m.Message]:
    """Every message received within ``seconds`` (or until ``until(msgs)`` is true)."""
    msgs: list[m.Message] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        msg = sub.recv(100)
        if msg is not None:
            msgs.append(msg)
        if until is not None and until(msgs):
            break
    return msgs


def worker_pids(ipc_dir: Path, timeout: float = 30.0) -> dict[str, int]:
    """pid of every worker, from their Status heartbeats."""
    pids: dict[str, int] = {}
    with subscriber(ipc_dir, (m.TOPIC_STATUS,)) as sub:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not set(NAMES) <= set(pids):
            msg = sub.recv(100)
            if isinstance(msg, m.Status) and msg.worker != "supervisor":
                pids[msg.worker] = msg.pid
    return pids


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


class Daemons:
    """Starts ``kinect-occlusion run`` on an endless synthetic camera with a tiny model (real processes).

    ``launch(env, **sections)`` writes the test config with ``sections`` overridden and starts a daemon;
    ``stop_all()`` stops whatever is still running (for a fixture's teardown). The coarse model runs
    in torch (``deeplab.runtime: torch``): these daemons test supervision, not the runtime, and the
    default on a CPU host (onnx) exports the model at every deeplab start (~1.3 s idle, more loaded);
    test_pipeline, test_replay_every_frame and the other replay tests keep the default.
    """

    def __init__(self, tmp_path: Path, ipc_dir: Path) -> None:
        self.tmp_path, self.ipc_dir = tmp_path, ipc_dir
        self.model = tiny_checkpoint(tmp_path / "model.pt")
        self.procs: list[subprocess.Popen] = []

    def launch(self, env: dict | None = None, log: Path | None = None, **sections) -> subprocess.Popen:
        sections = {"deeplab": {"runtime": "torch"}, **sections}
        path = write_config(self.tmp_path, self.ipc_dir, self.model, **sections)
        proc = start(["run", "--config", str(path)], env=env, log=log)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                stop(p)


class SharedDaemon:
    """One daemon for several tests of a module: one start-up instead of one per test.

    ``get()`` returns the running daemon, or starts a fresh one when none runs (so a test that stops
    it leaves the next test a new one); ``output()`` is what the current one has printed so far (it
    writes to a file); ``close()`` stops it (a module-scoped fixture's teardown).
    """

    def __init__(self, tmp_path: Path, env: dict | None = None, **sections) -> None:
        self.ipc_dir = Path(tempfile.mkdtemp(prefix="ko-", dir="/tmp"))
        self.log = tmp_path / "daemon.log"
        self.daemons = Daemons(tmp_path, self.ipc_dir)
        self.env, self.sections = env, sections
        self.proc: subprocess.Popen | None = None

    def get(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self.daemons.launch(self.env, log=self.log, **self.sections)
        return self.proc

    def output(self) -> str:
        return self.log.read_text()

    def close(self) -> None:
        self.daemons.stop_all()
        shutil.rmtree(self.ipc_dir, ignore_errors=True)
