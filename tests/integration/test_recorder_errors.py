"""The overlay recorder: a write failure mid-run is one error line and a non-zero exit, not a traceback."""

from __future__ import annotations

import numpy as np
from conftest import wait_for

from kinect_occlusion import messages as m
from kinect_occlusion.bus import Proxy, Publisher
from kinect_occlusion.runtime.recorder import OverlayRecorder


def test_recorder_that_cannot_write_stops_with_its_error(tmp_path, endpoints):
    front, back = endpoints
    (tmp_path / "gone").write_text("the folder became a file after the up-front check")
    target = tmp_path / "gone" / "overlay.mp4"
    with Proxy(front, back, hwm=100), Publisher(front, 100) as pub:
        rec = OverlayRecorder(str(target), back, "bed1", 15)
        rec.start()
        frame_id = 0

        def publish_until_it_stops() -> bool:
            nonlocal frame_id
            image = np.full((48, 64, 3), 100, np.uint8)
            pub.publish(m.ColorFrame(camera="bed1", frame_id=frame_id, ts_us=frame_id, image=image))
            mask = np.zeros((48, 64), np.uint8)
            pub.publish(m.OcclusionMask(camera="bed1", frame_id=frame_id, ts_us=frame_id, mask=mask))
            frame_id += 1
            return not rec.is_alive()

        assert wait_for(publish_until_it_stops, timeout=15.0)
        rec.stop()
    assert rec.error is not None and str(target) in rec.error and rec.written == 0
