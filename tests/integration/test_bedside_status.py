"""A bedside that loses its server keeps running and says so in its own status (read on its host).

Real processes: ``run --role server`` and ``run --role bedside`` on a tcp:// bus; the bedside's
status is read from its local ``bus.bedside_status`` endpoint, the way ``status --camera ID`` does.
"""

from __future__ import annotations

import time

import pytest
import yaml
from conftest import free_port, wait_for
from harness import cli, start, stop, tiny_checkpoint, write_config

from kinect_occlusion.commands import status

pytestmark = pytest.mark.slow


def bedside_config(tmp_path, ipc_dir):
    """One bed on a tcp:// server bus; the bedside's own status on a private ipc:// endpoint."""
    front, back = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    path = write_config(
        tmp_path,
        ipc_dir,
        tiny_checkpoint(tmp_path / "model.pt"),
        bus={"frontend": front, "backend": back},
        deeplab={"runtime": "torch"},  # no ONNX export at each server start (the link is under test)
    )
    data = yaml.safe_load(path.read_text())
    data["cameras"] = [{**data.pop("camera"), "id": "bed1", "fps": 5}]
    path.write_text(yaml.safe_dump(data))
    return path, f"ipc://{ipc_dir}/bed1-bedside"


def server_link(endpoint: str) -> str | None:
    """'up'/'down' from the bedside supervisor's newest Status on its local endpoint (None: no status)."""
    seen = status.collect(endpoint, "bed1", 0.6)
    sup = seen.get("supervisor")
    return sup.info.get("server") if sup is not None else None


def test_bedside_status_says_when_its_server_is_down_and_back(tmp_path, ipc_dir):
    cfg, local = bedside_config(tmp_path, ipc_dir)
    server = start(["run", "--role", "server", "--config", str(cfg)])
    bedside = start(["run", "--role", "bedside", "--camera", "bed1", "--config", str(cfg)])
    procs = [server, bedside]
    try:
        assert wait_for(lambda: server_link(local) == "up", timeout=60), "the bedside never saw its server"
        # Server gone: the bedside keeps running, its status says 'down' within a few seconds
        code, out = stop(server)
        assert code == 0, out
        gone = time.monotonic()
        assert wait_for(lambda: server_link(local) == "down", timeout=5)
        assert time.monotonic() - gone < 5
        done = cli("status", "--config", str(cfg), "--camera", "bed1")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("server link: down"), done.stdout
        # Server back: 'up' again once its bus answers
        server = procs[0] = start(["run", "--role", "server", "--config", str(cfg)])
        assert wait_for(lambda: server_link(local) == "up", timeout=30)
        assert cli("status", "-c", str(cfg), "--camera", "bed1").stdout.startswith("server link: up")
        assert bedside.poll() is None
    finally:
        outs = [stop(p) for p in procs]
    assert "bus server unreachable" in outs[1][1], outs[1][1]


def test_status_of_an_unknown_bedside_is_one_line(tmp_path, ipc_dir):
    cfg, _ = bedside_config(tmp_path, ipc_dir)
    done = cli("status", "-c", str(cfg), "--camera", "bed9")
    assert done.returncode == 2 and "no such camera" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0
