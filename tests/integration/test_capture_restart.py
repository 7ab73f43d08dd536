"""Frame identity on a real daemon (issue #10): a capture restart, forged future ids and a forged
tiny ROI must not stop fused masks. Real processes and sockets; only the camera and weights are fake."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import zmq
from harness import SharedDaemon, stop, subscriber, worker_pids

from kinect_occlusion import messages as m

pytestmark = pytest.mark.slow

TOPICS = (m.TOPIC_COLOR, m.TOPIC_OCCLUSION, m.TOPIC_PARTITION, m.TOPIC_STATUS)
FORGED = 2**62


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A daemon on a 30 fps synthetic camera whose partition runs on every coarse mask, shared by the
    module's tests (one start-up; the forged-ids test leaves it running, the restart test stops it)."""
    daemon = SharedDaemon(
        tmp_path_factory.mktemp("identity"),
        camera={"fps": 30},
        bus={"sndhwm": 32, "rcvhwm": 32},
        sam={"occlusion_threshold": 0.01},  # random weights: every coarse mask counts as occluded
    )
    yield daemon
    daemon.close()


def watch(sub, seconds: float, until) -> m.Message | None:
    """The first message within ``seconds`` for which ``until(msg)`` is true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        msg = sub.recv(100)
        if msg is not None and until(msg):
            return msg
    return None


def is_fused(msg: m.Message) -> bool:
    return isinstance(msg, m.OcclusionMask) and msg.fused


def fused_after(frame_id: int):
    """A predicate: a fused mask whose partition was computed from a real frame after ``frame_id``
    (a stale partition keeps masks fused for ``fuser.max_partition_age_ms`` after the fine branch stops)."""
    return lambda x: is_fused(x) and frame_id < x.partition_frame_id < FORGED


def forge(sock: zmq.Socket, sub, msgs: list[m.Message], seen) -> None:
    """Send ``msgs`` (again every 100 ms) until ``sub`` sees one pass the proxy (``seen``)."""
    for _ in range(30):
        for msg in msgs:
            sock.send_multipart(m.encode(msg))
        if watch(sub, 0.1, seen) is not None:
            return
    pytest.fail("forged messages never reached the bus")


def test_forged_future_ids_and_a_tiny_roi_do_not_stop_fused_masks(shared):
    daemon, ipc_dir = shared.get(), shared.ipc_dir
    pids = worker_pids(ipc_dir)
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PUB)
    sock.connect(f"ipc://{ipc_dir}/in")
    try:
        with subscriber(ipc_dir, TOPICS) as sub:
            real = watch(sub, 60, is_fused)
            assert real is not None, "no fused masks at start"
            # Three ColorFrames from the far future
            image = np.random.default_rng(0).integers(0, 256, (240, 320, 3), np.uint8)
            forged = m.ColorFrame(
                camera="bed1", epoch=real.epoch, frame_id=FORGED, ts_us=real.ts_us, image=image
            )
            forge(sock, sub, [forged] * 3, lambda x: isinstance(x, m.ColorFrame) and x.frame_id == FORGED)
            after = watch(sub, 2, lambda x: isinstance(x, m.ColorFrame) and x.frame_id < FORGED)
            assert after is not None
            again = watch(sub, 5, fused_after(after.frame_id))
            assert again is not None, "fused masks stopped after three forged frame ids 2**62"

            # CoarseMasks asking for a 16×12 ROI on the newest real frames, and one garbage message
            prob = np.full((240, 320), 255, np.uint8)
            for _ in range(5):
                frame = watch(sub, 2, lambda x: isinstance(x, m.ColorFrame) and x.frame_id < FORGED)
                assert frame is not None
                tiny = m.CoarseMask(
                    camera="bed1", epoch=frame.epoch, frame_id=frame.frame_id, ts_us=frame.ts_us,
                    prob=prob, roi=(100, 100, 16, 12),
                )  # fmt: skip
                sock.send_multipart(m.encode(tiny))
            sock.send_multipart([b"frame.color/bed1/", b"\xc1garbage", b""])
            seen: dict[str, m.Message] = {}

            def recovered(x: m.Message) -> bool:
                if isinstance(x, m.Partition) and (x.labels > 0).sum() == 16 * 12:
                    seen["tiny"] = x  # the partition of a 16×12 ROI
                elif fused_after(frame.frame_id)(x):
                    seen.setdefault("fused", x)
                elif isinstance(x, m.Status) and x.worker == "sam" and x.info.get("invalid", 0) >= 1:
                    seen["invalid"] = x  # defect 11: the partition worker counts invalid messages
                return {"tiny", "fused", "invalid"} <= set(seen)

            watch(sub, 8, recovered)
            assert "fused" in seen, "fused masks stopped after CoarseMasks with a 16x12 ROI"
            assert "tiny" in seen, "no partition of a 16x12 ROI was published"
            assert "invalid" in seen, "the partition worker reports no invalid count"
    finally:
        sock.close(linger=0)
    assert worker_pids(ipc_dir) == pids, "a worker restarted"
    assert daemon.poll() is None and "Traceback" not in shared.output()


def test_capture_restart_brings_fused_masks_back_within_5_s(shared):
    daemon, ipc_dir = shared.get(), shared.ipc_dir
    pids = worker_pids(ipc_dir)
    with subscriber(ipc_dir, TOPICS) as sub:
        # Run long enough that the old "skip ids <= last" rule would stall for well over 5 s
        last = watch(sub, 60, lambda x: is_fused(x) and x.frame_id >= 240)
        assert last is not None, "no fused masks before the restart"
        os.kill(pids["capture"], signal.SIGKILL)
        # The restarted capture counts from 0 again: its first frame is the restart
        first = watch(sub, 30, lambda x: isinstance(x, m.ColorFrame) and x.frame_id < 100)
        assert first is not None, "capture did not come back"
        t0 = time.monotonic()
        new_ids: set[int] = set()

        def fused_again(x: m.Message) -> bool:
            if isinstance(x, m.ColorFrame):
                new_ids.add(x.frame_id)
            return is_fused(x) and x.frame_id in new_ids and x.frame_id < 200

        fused = watch(sub, 5.0, fused_again)
        assert fused is not None, (
            f"no fused mask within 5 s of the capture restart (last frame {last.frame_id})"
        )
        assert time.monotonic() - t0 <= 5.0
        assert fused.epoch == first.epoch > last.epoch  # a new run, a larger epoch
    assert daemon.poll() is None
    assert stop(daemon)[0] == 0
