"""Child process for test_bus: publish raw 720p colour frames with our Publisher, then exit at once.

Usage: ``python publish_and_exit.py ENDPOINT N``. It publishes a small probe frame until a line
arrives on stdin (the parent's subscriber has seen the probe: the subscription is in place), then
publishes ``N`` raw 1280×720 frames and returns from main without waiting — the process must still
exit 0 (the buffers of messages in flight must outlive the interpreter's teardown).
"""

from __future__ import annotations

import select
import sys

import numpy as np

from kinect_occlusion import messages as m
from kinect_occlusion.bus import Publisher


def main(endpoint: str, n: int) -> int:
    probe = m.ColorFrame(camera="bed1", frame_id=0, ts_us=0, image=np.zeros((2, 2, 3), np.uint8))
    with Publisher(endpoint, sndhwm=4) as pub:
        while not select.select([sys.stdin], [], [], 0.02)[0]:
            pub.publish(probe)
        for i in range(1, n + 1):
            image = np.full((720, 1280, 3), i, np.uint8)
            pub.publish(m.ColorFrame(camera="bed1", frame_id=i, ts_us=i, image=image))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
