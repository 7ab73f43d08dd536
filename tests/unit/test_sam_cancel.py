"""A SAM partition stops within one decoder batch once ``should_stop`` turns true (issue #11 item 8)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from sam_fixtures import scene, tiny_sam  # noqa: F401  (fixture)

from kinect_occlusion import messages as m
from kinect_occlusion.config import SamConfig
from kinect_occlusion.errors import Cancelled
from kinect_occlusion.sam.partition import amg_kwargs, mask_generator, sam_partition
from kinect_occlusion.sam.partitioner import SamPartitioner
from kinect_occlusion.sam.worker import Refresher

# Many points, small batches: 16×16 = 256 prompts in 64 decoder batches (~0.3 s each for the tiny SAM here)
MANY = {"points_per_side": 16, "points_per_batch": 4}


class StopAfter:
    """``should_stop`` that turns true on its ``n``-th call, counting every call."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.n


class CountingBatches:
    """Counts the decoder batches a generator completes, and when each started and ended."""

    def __init__(self, generator, hold_after_first: threading.Event | None = None) -> None:
        self.spans: list[tuple[float, float]] = []
        self.first_done = threading.Event()
        inner = generator._process_batch

        def counted(*args, **kwargs):
            start = time.monotonic()
            out = inner(*args, **kwargs)  # a batch cancelled by its check is not counted
            self.spans.append((start, time.monotonic()))
            self.first_done.set()
            if hold_after_first is not None and len(self.spans) == 1:
                # The other thread sets the stop now, not whenever a loaded host schedules it
                hold_after_first.wait(30)
            return out

        generator._process_batch = counted

    @property
    def count(self) -> int:
        return len(self.spans)


def test_a_grid_partition_raises_cancelled_within_one_batch(tiny_sam):  # noqa: F811
    generator = mask_generator(tiny_sam, **amg_kwargs(**MANY))
    batches = CountingBatches(generator)
    stop = StopAfter(3)  # 1: before the crop, 2: before batch 1, 3: before batch 2 → stop
    with pytest.raises(Cancelled, match="cancelled before a decoder batch"):
        sam_partition(generator, scene(), stop)
    assert stop.calls == 3 and batches.count == 1
    assert generator.should_stop is None  # cleared: the generator can run again unchecked


def test_a_cancelled_partition_stops_before_the_image_encoder(tiny_sam):  # noqa: F811
    generator = mask_generator(tiny_sam, **amg_kwargs(**MANY))
    batches = CountingBatches(generator)
    with pytest.raises(Cancelled, match="before an image crop"):
        sam_partition(generator, scene(), StopAfter(1))
    assert batches.count == 0


def test_should_stop_needs_a_cancellable_generator(tiny_sam):  # noqa: F811
    from segment_anything import SamAutomaticMaskGenerator

    with pytest.raises(TypeError, match="mask_generator"):
        sam_partition(SamAutomaticMaskGenerator(tiny_sam, **amg_kwargs(**MANY)), scene(), StopAfter(1))


@pytest.mark.parametrize("guided", [False, True])
def test_the_sam_partitioner_checks_should_stop(tiny_sam, guided):  # noqa: F811
    img = scene()
    prob = np.zeros(img.shape[:2], np.float32)
    prob[10:80, 10:110] = 0.95  # guided: many prompts on the positives
    part = SamPartitioner(tiny_sam, MANY, guided=guided, guided_kwargs={"max_points": 1000})
    part.should_stop = stop = StopAfter(4)
    with pytest.raises(Cancelled):
        part(img, prob=prob)
    assert stop.calls == 4


def test_the_workers_refresh_ends_within_one_batch_of_the_stop_event(tiny_sam):  # noqa: F811
    """The stop event set from another thread mid-partition: no decoder batch starts after it."""
    part = SamPartitioner(tiny_sam, MANY)
    stop, stop_was_set = threading.Event(), threading.Event()
    part.should_stop = stop.is_set
    batches = CountingBatches(part.grid_generator, hold_after_first=stop_was_set)
    refresher = Refresher(SamConfig(skip_when_no_occlusion=False), part)
    frame = m.ColorFrame(camera="bed1", frame_id=1, ts_us=1, image=scene())
    set_at: list[float] = []

    def stop_after_the_first_batch() -> None:
        batches.first_done.wait(30)
        set_at.append(time.monotonic())
        stop.set()
        stop_was_set.set()

    setter = threading.Thread(target=stop_after_the_first_batch)
    setter.start()
    with pytest.raises(Cancelled):
        refresher.refresh(frame, None)
    ended = time.monotonic()
    setter.join()
    assert 1 <= batches.count <= 2, "the partition must end within one batch of the stop"
    assert all(start < set_at[0] for start, _ in batches.spans), "no batch starts after the stop"
    longest = max(end - start for start, end in batches.spans)
    assert ended - set_at[0] <= longest + 0.1
