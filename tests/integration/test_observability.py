"""A running daemon seen from outside: status command, subscribe command, Prometheus, one log."""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import free_port, wait_for
from harness import cli, start, stop, tiny_checkpoint, worker_pids, write_config

from kinect_occlusion.runtime.stages import NAMES

pytestmark = pytest.mark.slow


def test_status_subscribe_metrics_and_logs(tmp_path, ipc_dir):
    port = free_port()
    log_file = tmp_path / "pipeline.log"
    cfg = write_config(
        tmp_path,
        ipc_dir,
        tiny_checkpoint(tmp_path / "model.pt"),
        metrics={"prometheus_port": port},
        logging={"file": str(log_file), "level": "INFO"},
    )
    proc = start(["run", "--config", str(cfg)])
    try:
        assert set(worker_pids(ipc_dir)) == set(NAMES)
        # status --json and subscribe side by side (status listens for its full 2 s)
        out = tmp_path / "masks"
        with ThreadPoolExecutor(2) as pool:
            statusing = pool.submit(cli, "status", "--json", "--config", str(cfg), "--wait", "2")
            res = cli("subscribe", "--config", str(cfg), "--count", "3", "--save", str(out))
            done = statusing.result()
        # status --json: every worker and the supervisor, with counters
        assert done.returncode == 0, done.stderr
        status = json.loads(done.stdout)
        assert {"capture", "deeplab", "sam", "fuser", "supervisor"} <= set(status)
        assert status["sam"]["partitioner"].startswith("superpixel")
        assert status["deeplab"]["model"].startswith("deeplabv3plus-resnet18")
        # subscribe: rate/latency/drops printed, masks saved
        assert res.returncode == 0, res.stderr
        assert "msgs" in res.stdout and "latency p50" in res.stdout and "dropped" in res.stdout
        assert len(list(out.glob("mask_occlusion_*.png"))) == 3
        # Prometheus: rates and latency histograms

        def scrape():
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            except OSError:
                return None
            wanted = ('path="capture_to_fused"', 'kinect_occlusion_rate_hz{camera="bed1",worker="capture"}')
            return text if all(w in text for w in wanted) else None

        text = wait_for(scrape, timeout=20, interval=0.5)
        assert text is not None
        assert "kinect_occlusion_latency_seconds_bucket" in text and "kinect_occlusion_restarts" in text
    finally:
        code, output = stop(proc)
    assert code == 0, output
    names = ("MainProcess", "deeplab", "sam", "capture")

    def missing() -> list[str]:
        lines = log_file.read_text().splitlines()
        return [name for name in names if not any(f" {name} " in line for line in lines)]

    assert wait_for(lambda: not missing(), 5), missing()


def test_status_without_a_pipeline_is_one_line(tmp_path, ipc_dir):
    cfg = write_config(tmp_path, ipc_dir, None)
    res = cli("status", "--config", str(cfg), "--wait", "0.5")
    assert res.returncode == 1 and "no status" in res.stderr and "Traceback" not in res.stderr
