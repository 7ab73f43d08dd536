"""A ward on one server: three synthetic bedsides publish over tcp:// with CURVE to one server that
runs deeplab / partition / fuser for every bed; a ward subscriber ("*") gets masks of all beds."""

from __future__ import annotations

import os
import signal
import time

import pytest
import yaml
from conftest import free_port
from harness import collect, start, stop, tiny_checkpoint, write_config

from kinect_occlusion import messages as m
from kinect_occlusion.bus import Subscriber, load_curve
from kinect_occlusion.commands.keys import generate

pytestmark = pytest.mark.slow

BEDS = ("bed1", "bed2", "bed3")


def ward_config(tmp_path, ipc_dir):
    """A ward config: three synthetic cameras, a tcp bus with CURVE, a tiny model."""
    keys = tmp_path / "keys"
    generate(keys, ["client"], ["monitor"])
    front, back = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    path = write_config(
        tmp_path,
        ipc_dir,
        tiny_checkpoint(tmp_path / "model.pt"),
        bus={"frontend": front, "backend": back, "curve": {"enabled": True, "keys_dir": str(keys)}},
        # torch: no ONNX export at each of the server's two start-ups (the ward is under test)
        deeplab={"max_batch": 4, "batch_deadline_ms": 20, "runtime": "torch"},
    )
    data = yaml.safe_load(path.read_text())
    cam = data.pop("camera")
    data["cameras"] = [{**cam, "id": bed, "fps": 5, "synthetic_seed": i} for i, bed in enumerate(BEDS)]
    path.write_text(yaml.safe_dump(data))
    monitor = load_curve(str(keys), "server.key_secret", "monitor.key_secret", "authorized", server=False)
    return path, back, monitor


def beds_seen(sub: Subscriber, seconds: float, want: set[str], fused: bool = False) -> tuple[set[str], int]:
    """Cameras whose masks (``fused``: fused with their own bed's partition) arrived within
    ``seconds`` (stops early once ``want`` are all seen), and how many colour frames came along (a
    mask subscriber must get none)."""
    seen, colours = set(), 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not want <= seen:
        msg = sub.recv(100)
        if isinstance(msg, m.OcclusionMask) and (msg.fused or not fused):
            seen.add(msg.camera)
        elif isinstance(msg, m.ColorFrame):
            colours += 1
    return seen, colours


def server_ready(sub: Subscriber, seconds: float) -> bool:
    """Whether every server worker said it is past 'starting' within ``seconds``."""
    ready: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and ready != {"deeplab", "sam", "fuser"}:
        msg = sub.recv(100)
        if isinstance(msg, m.Status) and msg.worker != "supervisor" and msg.state != "starting":
            ready.add(msg.worker)
    return ready == {"deeplab", "sam", "fuser"}


def newest_epoch(sub: Subscriber, camera: str, seconds: float, above: int = -1) -> int | None:
    """The epoch (capture run) of the first mask of ``camera`` newer than ``above`` within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        msg = sub.recv(100)
        if isinstance(msg, m.OcclusionMask) and msg.camera == camera and msg.epoch > above:
            return msg.epoch
    return None


def test_ward_three_bedsides_one_server(tmp_path, ipc_dir):
    cfg, back, keys = ward_config(tmp_path, ipc_dir)
    server = start(["run", "--role", "server", "--config", str(cfg)])
    beds = {b: start(["run", "--role", "bedside", "--camera", b, "--config", str(cfg)]) for b in BEDS}
    procs = [server, *beds.values()]
    try:
        with Subscriber(back, "*", [m.TOPIC_OCCLUSION], rcvhwm=1000, curve=keys) as sub:
            # Masks of all three beds through one "*" subscriber, and not one colour frame
            seen, colours = beds_seen(sub, 60, set(BEDS))
            assert seen == set(BEDS) and colours == 0
            # Each bed's coarse mask pairs with its own bed's partition (per-camera fuser state)
            seen, colours = beds_seen(sub, 20, set(BEDS), fused=True)
            assert seen == set(BEDS) and colours == 0
            # Killing one bedside leaves the other beds' masks flowing
            os.killpg(beds["bed1"].pid, signal.SIGKILL)
            beds["bed1"].wait(10)
            collect(sub, 1.5)  # what bed1 had in flight
            # the whole window (2 s, 10 frames of each bed at 5 fps): bed1 must stay silent
            seen, _ = beds_seen(sub, 2, set(BEDS))
            assert seen == {"bed2", "bed3"}
            # Server restart: the bedsides keep running, their masks resume within 10 s of its return
            code, out = stop(server)
            assert code == 0, out
            server = procs[0] = start(["run", "--role", "server", "--config", str(cfg)])
            with Subscriber(back, "ward", [m.TOPIC_STATUS], curve=keys) as status:
                assert server_ready(status, 60), "the restarted server never got ready"
            seen, _ = beds_seen(sub, 10, {"bed2", "bed3"})  # within 10 s of the server coming back
            assert seen == {"bed2", "bed3"}
            assert beds["bed2"].poll() is None and beds["bed3"].poll() is None
            # bed2's supervisor SIGKILLed alone (the kernel SIGTERMs its workers) and started again at
            # once under a new pid: accepted, its masks (a new capture run) within 30 s
            epoch = newest_epoch(sub, "bed2", 10)
            assert epoch is not None
            os.kill(beds["bed2"].pid, signal.SIGKILL)
            beds["bed2"].wait(10)
            procs.append(start(["run", "--role", "bedside", "--camera", "bed2", "--config", str(cfg)]))
            assert newest_epoch(sub, "bed2", 30, above=epoch) is not None, f"exit {procs[-1].poll()}"
            # A second live bedside claiming bed2 is still refused with one line (exit 2)
            dup = start(["run", "--role", "bedside", "--camera", "bed2", "--config", str(cfg)])
            code, out = stop(dup, timeout=15) if dup.wait(15) is not None else (None, "")
            assert code == 2 and "already published by another bedside" in out, out
            assert out.strip().count("\n") == 0, out
            assert procs[-1].poll() is None
    finally:
        outs = [stop(p) for p in procs]
    bed2_out = outs[2][1]
    assert "bus server unreachable" in bed2_out, bed2_out
